package segmenter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// Regression tests for defects these tests once found in the segmenter.

// The window, the listed parts and the retention of removed names are counted
// in segments (segmenter.go New: s.window, s.retain, s.partSegments), sized
// for full segments. Every Discontinuity() closes a short segment, so an
// ingest that reconnects often (a flapping publisher) shrinks all three below
// 3 × target duration: with "low" and a reconnect every part, the window is
// 12 × 213 ms = 2.56 s (< 3 s), parts are listed for 4 × 213 ms, and names are
// removed 853 ms after they left the playlist (LLHLS.md §1, §6.2.2: ≥ 3 × TD).
func TestShortSegmentsKeepWindowAndRetention(t *testing.T) {
	for _, tc := range []struct {
		name   string
		preset string
		every  int // frames between discontinuities
	}{
		{"reconnect every part", "low", 10},
		{"reconnect every 2 parts", "low", 20},
		{"reconnect every part", "balanced", 24},
	} {
		t.Run(tc.preset+"/"+tc.name, func(t *testing.T) {
			runRules(t, segmenter.Presets[tc.preset], aac48k, func(f *feeder) {
				for range 300 {
					f.frames(tc.every)
					require.NoError(t, f.seg.Discontinuity())
				}
			})
		})
	}
}

// The same count-based retention bites at End() when segments run short of
// the nominal duration: Opus packets of mixed 2.5/10/20 ms fill 200 ms parts
// only to 180–200 ms, segments last ~0.95 s instead of 1 s, and End() closes
// a last, partial segment that pushes an old one out: it is removed 2.975 s
// after it left the playlist.
func TestRetentionAtEndWithShortSegments(t *testing.T) {
	st := opusStream("mixed", opus2500us, opus10ms, opus20ms, opus10ms)
	runRules(t, segmenter.Presets["low"], st, func(f *feeder) {
		f.batch = 4
		f.seconds(90 * time.Second)
		f.seg.End()
	})
}

// Validate accepts Window: 3 for any durations, but a segment can be shorter
// than the target duration it rounds to: 200 ms parts and a 1.6 s segment
// give 8 parts = 1.707 s, TARGETDURATION 2, and a window of 3 × 1.707 s =
// 5.12 s < 3 × TD = 6 s. New should raise the window (or Validate refuse it)
// so that it covers 3 × TD.
func TestWindowCoversThreeTargetDurations(t *testing.T) {
	for _, cfg := range []segmenter.Config{
		{PartDuration: 200 * time.Millisecond, SegmentDuration: 1600 * time.Millisecond, Window: 3},
		{PartDuration: 200 * time.Millisecond, SegmentDuration: 1500 * time.Millisecond, Window: 3},
		{PartDuration: time.Second, SegmentDuration: 2500 * time.Millisecond, Window: 3},
	} {
		t.Run(cfg.SegmentDuration.String(), func(t *testing.T) {
			rec := &recorder{}
			s, err := segmenter.New(cfg, aac48k.codec(), rec, fixedClock)
			if err != nil {
				require.ErrorContains(t, err, "window:")
				return
			}
			newFeeder(t, aac48k, s, rec).seconds(60 * time.Second)
			pl := rec.last(t).Playlist
			var window time.Duration
			for _, seg := range pl.Segments {
				window += seg.Duration
			}
			require.GreaterOrEqual(t, window, 3*time.Duration(pl.TargetDuration)*time.Second)
		})
	}
}

// Config documents "Default 500ms" and "Default 2s", but New applies no
// defaults: the zero Config fails Validate.
func TestZeroConfigUsesDocumentedDefaults(t *testing.T) {
	s, err := segmenter.New(segmenter.Config{}, opus48k.codec(), &recorder{}, fixedClock)
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, s.PartTarget())
	require.Equal(t, 4, s.PartsPerSegment())
}

// Parts are cut before a packet would overflow PART-TARGET, so Opus packets
// longer than 30 ms leave parts under 85 % of PART-TARGET with preset low:
// 80 ms packets make 160 ms parts, 120 ms packets 120 ms parts, mixed
// 20/40/60 ms packets parts down to 160 ms. §4.4.4.9 exempts INDEPENDENT=YES
// parts (all audio parts are), so players accept it, but it breaks the
// package doc ("every part of a broadcast has the same duration") and the
// ≥ 85 % rule this project checks.
func TestOpusLongPacketsFillParts(t *testing.T) {
	for _, st := range []stream{
		opusStream("80ms", opus80ms),
		opusStream("120ms", opus120ms),
	} {
		t.Run(st.name, func(t *testing.T) {
			runRules(t, segmenter.Presets["low"], st, func(f *feeder) { f.seconds(30 * time.Second) })
		})
	}
}
