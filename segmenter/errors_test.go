package segmenter_test

import (
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

func TestPresetsValidate(t *testing.T) {
	for name, cfg := range segmenter.Presets {
		require.NoError(t, cfg.Validate(), name)
	}
	require.ElementsMatch(t, []string{"low", "balanced", "scale"}, keys(segmenter.Presets))
}

// Each Validate error names the config field at fault, as the YAML spells it.
func TestNewBadConfig(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		cfg   segmenter.Config
		field string
	}{
		{"part 19ms", segmenter.Config{PartDuration: 19 * ms, SegmentDuration: time.Second}, "part_duration"},
		{"part 5.001s", segmenter.Config{PartDuration: 5001 * ms, SegmentDuration: 6 * time.Second}, "part_duration"},
		{"part negative", segmenter.Config{PartDuration: -200 * ms, SegmentDuration: time.Second}, "part_duration"},
		{"segment shorter than part", segmenter.Config{PartDuration: 500 * ms, SegmentDuration: 499 * ms}, "segment_duration"},
		{"segment 12.001s", segmenter.Config{PartDuration: time.Second, SegmentDuration: 12001 * ms}, "segment_duration"},
		{"window 2", segmenter.Config{PartDuration: 200 * ms, SegmentDuration: time.Second, Window: 2}, "window"},
		{"window negative", segmenter.Config{PartDuration: 200 * ms, SegmentDuration: time.Second, Window: -1}, "window"},
		{"window 1001", segmenter.Config{PartDuration: 200 * ms, SegmentDuration: time.Second, Window: 1001}, "window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field+":")

			s, err := segmenter.New(tc.cfg, aac48k.codec(), &recorder{}, fixedClock)
			require.Nil(t, s)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field+":")
		})
	}

	// The bounds themselves are valid.
	for _, cfg := range []segmenter.Config{
		{PartDuration: 20 * ms, SegmentDuration: 20 * ms, Window: 3},
		{PartDuration: 5 * time.Second, SegmentDuration: 12 * time.Second, Window: 1000},
	} {
		require.NoError(t, cfg.Validate(), "%+v", cfg)
		_, err := segmenter.New(cfg, aac48k.codec(), &recorder{}, fixedClock)
		require.NoError(t, err, "%+v", cfg)
	}
}

func TestNewBadCodec(t *testing.T) {
	cfg := segmenter.Presets["low"]
	asc := func(rate int) *mpeg4audio.AudioSpecificConfig {
		return &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: rate, ChannelConfig: 2}
	}
	for _, tc := range []struct {
		name  string
		codec segmenter.Codec
	}{
		{"nil", nil},
		{"nil *AAC", (*segmenter.AAC)(nil)},
		{"AAC without config", &segmenter.AAC{}},
		{"AAC 7350 Hz", &segmenter.AAC{Config: asc(7350)}},
		{"AAC 0 Hz", &segmenter.AAC{Config: asc(0)}},
		{"AAC 192 kHz", &segmenter.AAC{Config: asc(192000)}},
		{"nil *Opus", (*segmenter.Opus)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NotPanics(t, func() {
				s, err := segmenter.New(cfg, tc.codec, &recorder{}, fixedClock)
				require.Nil(t, s)
				require.Error(t, err)
				require.Contains(t, err.Error(), "codec:")
			})
		})
	}
}

func TestNewNilSinkAndClock(t *testing.T) {
	_, err := segmenter.New(segmenter.Presets["low"], aac48k.codec(), nil, fixedClock)
	require.ErrorContains(t, err, "sink")

	// A nil clock means time.Now.
	rec := &recorder{}
	s, err := segmenter.New(segmenter.Presets["low"], aac48k.codec(), rec, nil)
	require.NoError(t, err)
	before := time.Now()
	newFeeder(t, aac48k, s, rec).seconds(2 * time.Second)
	pdt := rec.last(t).Playlist.Segments[0].ProgramDateTime
	require.WithinRange(t, pdt, before.Add(-time.Second), time.Now().Add(time.Second))
}

// Nothing is published before the first part, and the first update carries
// the init section.
func TestNothingBeforeFirstPart(t *testing.T) {
	s, rec := newSegmenter(t, segmenter.Presets["low"], aac48k.codec())
	f := newFeeder(t, aac48k, s, rec)
	f.frames(9)
	require.Empty(t, rec.updates)
	f.frames(1)
	require.Len(t, rec.updates, 1)
	require.Len(t, rec.updates[0].Added, 2, "init section and first part")
	require.Equal(t, rec.prefix(t)+"-0.0.m4s", rec.updates[0].Added[1].Name)
}

func TestWrongCodecWrites(t *testing.T) {
	aac, recA := newSegmenter(t, segmenter.Presets["low"], aac48k.codec())
	err := aac.WriteOpus(0, [][]byte{opus20ms})
	require.Error(t, err)
	require.Contains(t, err.Error(), "Opus written to a AAC")

	op, recO := newSegmenter(t, segmenter.Presets["low"], opus48k.codec())
	err = op.WriteAAC(0, [][]byte{{0x21, 0x10}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "AAC written to a Opus")

	// Rejected writes leave no trace: the streams go on from sample 0.
	newFeeder(t, aac48k, aac, recA).seconds(time.Second)
	newFeeder(t, opus48k, op, recO).seconds(time.Second)
	for _, r := range []*recorder{recA, recO} {
		require.NotEmpty(t, r.updates)
	}
	newChecker(t, aac48k, aac, recA.prefix(t)).checkAll(recA.updates)
	newChecker(t, opus48k, op, recO.prefix(t)).checkAll(recO.updates)
}

func TestWritesAfterEnd(t *testing.T) {
	for _, st := range []stream{aac48k, opus48k} {
		t.Run(st.name, func(t *testing.T) {
			s, rec := newSegmenter(t, segmenter.Presets["low"], st.codec())
			f := newFeeder(t, st, s, rec)
			f.seconds(1500 * time.Millisecond)
			s.End()
			n := len(rec.updates)
			require.True(t, rec.last(t).Playlist.Ended)

			require.ErrorIs(t, f.write(1), segmenter.ErrEnded)
			require.ErrorIs(t, s.Discontinuity(), segmenter.ErrEnded)
			// Empty writes too: the stream is over.
			if st.isOpus() {
				require.ErrorIs(t, s.WriteOpus(0, nil), segmenter.ErrEnded)
			} else {
				require.ErrorIs(t, s.WriteAAC(0, nil), segmenter.ErrEnded)
			}
			s.End()
			require.Len(t, rec.updates, n, "End twice publishes once")
		})
	}
}

func TestBadOpusPackets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		preset string
		pkt    []byte
	}{
		// Code 3 with 63 frames of 20 ms: 1.26 s, longer than any part.
		{"1.26s packet", "scale", []byte{0xFB, 63}},
		// Four 60 ms SILK frames: 240 ms, more than a low part of 200 ms.
		{"240ms packet", "low", []byte{0x5B, 4}},
		// Code 3 without its frame count byte: no duration.
		{"truncated code 3", "low", []byte{0xFB}},
		// Code 3 with 0 frames.
		{"zero frames", "low", []byte{0xFB, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec := newSegmenter(t, segmenter.Presets[tc.preset], opus48k.codec())
			f := newFeeder(t, opus48k, s, rec)
			f.frames(3)
			err := s.WriteOpus(0, [][]byte{tc.pkt})
			require.Error(t, err)
			require.Contains(t, err.Error(), "cannot fit a part")

			// The stream goes on as if the packet had not been written.
			f.seconds(3 * time.Second)
			s.End()
			newChecker(t, opus48k, s, rec.prefix(t)).checkAll(rec.updates)
		})
	}
}

// The longest legal Opus packet (120 ms) fits every preset's parts; 20 ms
// parts take nothing longer than 20 ms.
// Parts are sized from the first Opus packet; a later packet longer than a
// part is refused.
func TestOpusPacketAgainstPart(t *testing.T) {
	for _, tc := range []struct {
		cfg         segmenter.Config
		first, next []byte
		fits        bool
	}{
		{segmenter.Presets["low"], opus20ms, opus120ms, true},
		{segmenter.Config{PartDuration: 20 * time.Millisecond, SegmentDuration: time.Second}, opus20ms, opus20ms, true},
		{segmenter.Config{PartDuration: 20 * time.Millisecond, SegmentDuration: time.Second}, opus20ms, opus40ms, false},
		{segmenter.Config{PartDuration: 20 * time.Millisecond, SegmentDuration: time.Second}, opus40ms, opus40ms, true},
		{segmenter.Config{PartDuration: 100 * time.Millisecond, SegmentDuration: time.Second}, opus100ms, opus120ms, false},
	} {
		s, _ := newSegmenter(t, tc.cfg, opus48k.codec())
		require.NoError(t, s.WriteOpus(0, [][]byte{tc.first}))
		err := s.WriteOpus(0, [][]byte{tc.next})
		if tc.fits {
			require.NoError(t, err, "% x after % x in %v parts", tc.next, tc.first, tc.cfg.PartDuration)
		} else {
			require.Error(t, err, "% x after % x in %v parts", tc.next, tc.first, tc.cfg.PartDuration)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
