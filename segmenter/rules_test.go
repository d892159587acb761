package segmenter_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// runRules feeds a broadcast through a segmenter and checks every update it
// published against LLHLS.md §1 (see checker).
func runRules(t *testing.T, cfg segmenter.Config, st stream, script func(f *feeder)) *checker {
	t.Helper()
	s, rec := newSegmenter(t, cfg, st.codec())
	f := newFeeder(t, st, s, rec)
	script(f)
	c := newChecker(t, st, s, rec.prefix(t))
	c.checkAll(rec.updates)
	if c.prev.Ended {
		require.Equal(t, f.next, c.nextAU, "every access unit written before End is in a part")
	}
	return c
}

// TestRules runs two minutes of audio per preset and codec, then ends the
// broadcast mid-part, and checks every update.
func TestRules(t *testing.T) {
	streams := []stream{aac48k, aac44k, opus48k}
	for i, preset := range []string{"low", "balanced", "scale"} {
		for j, st := range streams {
			t.Run(preset+"/"+st.name, func(t *testing.T) {
				t.Parallel()
				c := runRules(t, segmenter.Presets[preset], st, func(f *feeder) {
					f.batch = 1 + 3*i + j // writes of 1 to 9 access units
					f.seconds(120 * time.Second)
					f.seconds(333 * time.Millisecond)
					f.seg.End()
				})
				// Every update brings a new part, but for End's, which
				// closes the last segment: every hint was kept.
				require.Equal(t, 1, c.closeOnly)
			})
		}
	}
}

// TestRulesScenarios covers what a real ingest does besides steady audio.
func TestRulesScenarios(t *testing.T) {
	for _, tc := range []struct {
		name   string
		preset string
		st     stream
		script func(f *feeder)
	}{
		// Reconnects after 2 s away: PROGRAM-DATE-TIME may jump forward
		// at each DISCONTINUITY, never back.
		{"reconnect every 7.3s", "low", aac48k, func(f *feeder) {
			for range 16 {
				f.seconds(7300 * time.Millisecond)
				f.reconnect(2 * time.Second)
			}
			f.seg.End()
		}},
		{"discontinuity on a segment boundary", "balanced", opus48k, func(f *feeder) {
			f.seconds(4 * time.Second) // exactly two segments
			require.NoError(f.t, f.seg.Discontinuity())
			f.seconds(60 * time.Second)
		}},
		{"two discontinuities in a row", "low", aac44k, func(f *feeder) {
			f.seconds(3 * time.Second)
			require.NoError(f.t, f.seg.Discontinuity())
			require.NoError(f.t, f.seg.Discontinuity())
			f.seconds(30 * time.Second)
		}},
		{"discontinuity before the first sample", "low", aac48k, func(f *feeder) {
			require.NoError(f.t, f.seg.Discontinuity())
			f.seconds(30 * time.Second)
		}},
		{"ended on a part boundary", "balanced", aac48k, func(f *feeder) {
			f.frames(24 * 7) // seven full parts
			f.seg.End()
		}},
		{"ended on a segment boundary", "scale", opus48k, func(f *feeder) {
			f.seconds(8 * time.Second)
			f.seg.End()
		}},
		{"ended before any sample", "low", aac48k, func(f *feeder) { f.seg.End() }},
		{"ended inside the first part", "low", opus48k, func(f *feeder) {
			f.frames(3)
			f.seg.End()
		}},
		{"empty writes", "low", aac48k, func(f *feeder) {
			require.NoError(f.t, f.seg.WriteAAC(0, nil))
			require.NoError(f.t, f.seg.WriteAAC(0, [][]byte{{}, {}}))
			f.seconds(10 * time.Second)
			require.NoError(f.t, f.seg.WriteAAC(0, [][]byte{{}}))
			f.seconds(10 * time.Second)
		}},
		{"one write of 30s", "low", aac48k, func(f *feeder) {
			f.batch = 30 * 48000 / 1024
			f.seconds(30 * time.Second)
		}},
		// Encoders switch frame sizes; packets of at most 20 ms always fill
		// a 200 ms part to ≥ 90 %.
		{"opus 2.5/10/20 ms packets", "low", opusStream("mixed", opus2500us, opus10ms, opus20ms, opus10ms), func(f *feeder) {
			f.batch = 4
			f.seconds(90 * time.Second)
		}},
		{"opus 60 ms packets", "low", opusStream("60ms", opus60ms), func(f *feeder) {
			f.seconds(60 * time.Second)
		}},
		{"opus 120 ms packets", "balanced", opusStream("120ms", opus120ms), func(f *feeder) {
			f.seconds(60 * time.Second)
		}},
		{"opus 120 ms packets", "scale", opusStream("120ms", opus120ms), func(f *feeder) {
			f.seconds(90 * time.Second)
		}},
	} {
		t.Run(tc.preset+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			runRules(t, segmenter.Presets[tc.preset], tc.st, tc.script)
		})
	}
}

type discard struct{}

func (discard) Publish(segmenter.Update) {}

// BenchmarkWriteAAC measures the cost of one AAC frame, parts and playlists
// included.
func BenchmarkWriteAAC(b *testing.B) {
	s, err := segmenter.New(segmenter.Presets["low"], aac48k.codec(), discard{}, fixedClock)
	require.NoError(b, err)
	au := [][]byte{make([]byte, 256)}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WriteAAC(0, au); err != nil {
			b.Fatal(err)
		}
	}
}

// snapshotter renders every playlist the moment it is published.
type snapshotter struct {
	recorder
	rendered [][]byte
	objects  [][]byte // a copy of every added object, in order
}

func (s *snapshotter) Publish(u segmenter.Update) {
	b, err := u.Playlist.Render(false)
	if err != nil {
		panic(err)
	}
	s.rendered = append(s.rendered, b)
	for _, o := range u.Added {
		s.objects = append(s.objects, bytes.Clone(o.Data))
	}
	s.recorder.Publish(u)
}

// A published Playlist is handed to llhls.NewSnapshot and must never change
// afterwards, although the segmenter keeps appending to the slices behind it;
// nor may the bytes of an object the Sink now owns.
func TestPublishedPlaylistsStayImmutable(t *testing.T) {
	sink := &snapshotter{recorder: recorder{clock: &clock{now: epoch}}}
	s, err := segmenter.New(segmenter.Presets["low"], aac48k.codec(), sink, sink.clock.Now)
	require.NoError(t, err)
	f := newFeeder(t, aac48k, s, &sink.recorder)
	f.batch = 5
	for range 4 {
		f.seconds(7 * time.Second)
		f.reconnect(time.Second)
	}
	f.seconds(20 * time.Second)
	s.End()
	require.Len(t, sink.updates, len(sink.rendered))
	for k, u := range sink.updates {
		b, err := u.Playlist.Render(false)
		require.NoError(t, err)
		require.Equal(t, string(sink.rendered[k]), string(b), "update %d changed after it was published", k)
	}
	i := 0
	for _, u := range sink.updates {
		for _, o := range u.Added {
			require.True(t, bytes.Equal(sink.objects[i], o.Data), "%s changed after it was published", o.Name)
			i++
		}
	}
}
