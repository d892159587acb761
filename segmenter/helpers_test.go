package segmenter_test

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// epoch is where every test clock starts: the first sample's
// PROGRAM-DATE-TIME.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixedClock never moves: for tests that write no audio, or that need the
// wall clock to fall behind the audio.
func fixedClock() time.Time { return epoch }

// clock is an injected wall clock. The feeder moves it on with the audio it
// writes, as a real-time publisher would, and by the gap of a reconnect.
type clock struct {
	now time.Time
}

func (c *clock) Now() time.Time { return c.now }

// recorder is a Sink that keeps every update, in order.
type recorder struct {
	updates []segmenter.Update
	clock   *clock // the segmenter's clock, when newSegmenter made it
}

func (r *recorder) Publish(u segmenter.Update) { r.updates = append(r.updates, u) }

func (r *recorder) last(t *testing.T) segmenter.Update {
	t.Helper()
	require.NotEmpty(t, r.updates, "the segmenter published nothing")
	return r.updates[len(r.updates)-1]
}

// prefix is the random per-broadcast URI prefix, taken from the init object
// of the first update.
func (r *recorder) prefix(t *testing.T) string {
	t.Helper()
	require.NotEmpty(t, r.updates, "the segmenter published nothing")
	require.NotEmpty(t, r.updates[0].Added, "the first update carries no objects")
	name := r.updates[0].Added[0].Name
	require.True(t, strings.HasSuffix(name, "-init.mp4"), "first object %q is not the init section", name)
	return strings.TrimSuffix(name, "-init.mp4")
}

// Opus TOC bytes (RFC 6716 §3.1) with the duration PacketDuration2 gives them.
var (
	opus2500us = []byte{0xE0}       // CELT NB 2.5 ms, code 0
	opus10ms   = []byte{0xF0}       // CELT FB 10 ms, code 0
	opus20ms   = []byte{0xFC}       // CELT FB 20 ms stereo, code 0
	opus40ms   = []byte{0xF9}       // CELT FB 20 ms, code 1: two frames
	opus60ms   = []byte{0x58}       // SILK WB 60 ms, code 0
	opus80ms   = []byte{0xFB, 0x04} // CELT FB 20 ms, code 3: four frames
	opus100ms  = []byte{0xFB, 0x05} // five frames
	opus120ms  = []byte{0xFB, 0x06} // six frames, the longest legal packet
)

func TestOpusTOCHelpers(t *testing.T) {
	for _, tc := range []struct {
		toc     []byte
		samples int64
	}{
		{opus2500us, 120},
		{opus10ms, 480},
		{opus20ms, 960},
		{opus40ms, 1920},
		{opus60ms, 2880},
		{opus80ms, 3840},
		{opus100ms, 4800},
		{opus120ms, 5760},
	} {
		require.Equal(t, tc.samples, opus.PacketDuration2(tc.toc), "TOC % x", tc.toc)
	}
}

// stream describes the codec under test and how to make its access units.
type stream struct {
	name  string
	codec func() segmenter.Codec
	rate  int64 // timescale of the track
	// tocs are the Opus TOC prefixes that packets cycle through; nil for AAC.
	tocs [][]byte
}

func aacCodec(rate int) func() segmenter.Codec {
	return func() segmenter.Codec {
		return &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
			Type:          mpeg4audio.ObjectTypeAACLC,
			SampleRate:    rate,
			ChannelConfig: 1,
		}}
	}
}

func opusCodec() segmenter.Codec { return &segmenter.Opus{Channels: 2} }

func opusStream(name string, tocs ...[]byte) stream {
	return stream{name: name, codec: opusCodec, rate: 48000, tocs: tocs}
}

var (
	aac48k  = stream{name: "aac48k", codec: aacCodec(48000), rate: 48000}
	aac44k  = stream{name: "aac44k", codec: aacCodec(44100), rate: 44100}
	opus48k = opusStream("opus", opus20ms)
)

func (st stream) isOpus() bool { return st.tocs != nil }

// frameSamples is the duration of access unit n of st.
func (st stream) frameSamples(n int) int64 {
	if !st.isOpus() {
		return 1024
	}
	return opus.PacketDuration2(st.tocs[n%len(st.tocs)])
}

// au makes access unit n: the codec prefix (Opus TOC) followed by n, so that
// every payload is distinct and its position in the output can be checked.
func (st stream) au(n int) []byte {
	var b []byte
	if st.isOpus() {
		b = append(b, st.tocs[n%len(st.tocs)]...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// feeder writes numbered access units of one stream into a segmenter, in real
// time as far as the segmenter's clock can tell.
type feeder struct {
	t     testing.TB
	st    stream
	seg   *segmenter.Segmenter
	clock *clock // nil: the clock does not follow the audio
	next  int    // number of the next access unit
	batch int    // access units per write; 0 means 1
	total int64  // samples written
	gaps  time.Duration
}

// newFeeder feeds s; rec.clock, when set, follows the audio written.
func newFeeder(t testing.TB, st stream, s *segmenter.Segmenter, rec *recorder) *feeder {
	f := &feeder{t: t, st: st, seg: s}
	if rec != nil {
		f.clock = rec.clock
	}
	return f
}

// reconnect is an ingest that drops and comes back gap later.
func (f *feeder) reconnect(gap time.Duration) {
	f.t.Helper()
	require.NoError(f.t, f.seg.Discontinuity())
	f.gaps += gap
	f.tick()
}

// tick sets the clock to the end of the audio written, plus the gaps.
func (f *feeder) tick() {
	if f.clock != nil {
		f.clock.now = epoch.Add(samplesToDuration(f.total, f.st.rate) + f.gaps)
	}
}

// write writes access units [f.next, f.next+n) in one call.
func (f *feeder) write(n int) error {
	aus := make([][]byte, n)
	var d int64
	for i := range aus {
		aus[i] = f.st.au(f.next + i)
		d += f.st.frameSamples(f.next + i)
	}
	pts := time.Duration(f.total) * time.Second / time.Duration(f.st.rate)
	var err error
	if f.st.isOpus() {
		err = f.seg.WriteOpus(pts, aus)
	} else {
		err = f.seg.WriteAAC(pts, aus)
	}
	if err == nil {
		f.next += n
		f.total += d
		f.tick()
	}
	return err
}

// frames writes n access units, f.batch per call.
func (f *feeder) frames(n int) {
	f.t.Helper()
	batch := max(1, f.batch)
	for n > 0 {
		k := min(batch, n)
		require.NoError(f.t, f.write(k))
		n -= k
	}
}

// seconds writes the access units that fit in the next d of media time.
func (f *feeder) seconds(d time.Duration) {
	f.t.Helper()
	end := f.total + int64(d)*f.st.rate/int64(time.Second)
	n, total := 0, f.total
	for total+f.st.frameSamples(f.next+n) <= end {
		total += f.st.frameSamples(f.next + n)
		n++
	}
	f.frames(n)
}

// samplesToDuration is the reference conversion: truncated to the nanosecond,
// exact for any test length (no intermediate overflow below ~53 h at 48 kHz).
func samplesToDuration(samples, rate int64) time.Duration {
	return time.Duration(samples * int64(time.Second) / rate)
}

func newSegmenter(t testing.TB, cfg segmenter.Config, codec segmenter.Codec) (*segmenter.Segmenter, *recorder) {
	t.Helper()
	rec := &recorder{clock: &clock{now: epoch}}
	s, err := segmenter.New(cfg, codec, rec, rec.clock.Now)
	require.NoError(t, err)
	return s, rec
}
