package segmenter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// TestNominalVersusRealDurations: parts hold a whole number of frames, so
// PART-TARGET is the nominal part duration rounded up to a frame boundary
// (AAC: 1024 samples; Opus: 20 ms), a segment holds a whole number of parts,
// and TARGETDURATION is the real segment duration rounded.
func TestNominalVersusRealDurations(t *testing.T) {
	ns := func(n int64) time.Duration { return time.Duration(n) }
	for _, tc := range []struct {
		preset          string // a key of Presets, or a name for cfg
		cfg             *segmenter.Config
		st              stream
		partTarget      time.Duration
		partsPerSegment int
		targetDuration  int
	}{
		// 10 frames of 1024 samples at 48 kHz = 213.333 ms; 5 parts = 1.067 s.
		{"low", nil, aac48k, ns(213333333), 5, 1},
		// 24 frames = 512 ms; 4 parts = 2.048 s.
		{"balanced", nil, aac48k, 512 * time.Millisecond, 4, 2},
		// 47 frames = 1.002667 s; 4 parts = 4.011 s.
		{"scale", nil, aac48k, ns(1002666666), 4, 4},
		// 9 frames at 44.1 kHz = 208.980 ms; 5 parts = 1.045 s.
		{"low", nil, aac44k, ns(208979591), 5, 1},
		// 22 frames = 510.839 ms; 4 parts = 2.043 s.
		{"balanced", nil, aac44k, ns(510839002), 4, 2},
		// 44 frames = 1.021678 s; 4 parts = 4.087 s.
		{"scale", nil, aac44k, ns(1021678004), 4, 4},
		// Opus frames of 20 ms divide every preset exactly.
		{"low", nil, opus48k, 200 * time.Millisecond, 5, 1},
		{"balanced", nil, opus48k, 500 * time.Millisecond, 4, 2},
		{"scale", nil, opus48k, time.Second, 4, 4},
	} {
		t.Run(tc.preset+"/"+tc.st.name, func(t *testing.T) {
			cfg := segmenter.Presets[tc.preset]
			if tc.cfg != nil {
				cfg = *tc.cfg
			}
			s, rec := newSegmenter(t, cfg, tc.st.codec())
			require.Equal(t, tc.partTarget, s.PartTarget(), "PartTarget")
			require.Equal(t, tc.partsPerSegment, s.PartsPerSegment(), "PartsPerSegment")
			require.Equal(t, tc.targetDuration, s.TargetDuration(), "TargetDuration")

			// The longest real part is exactly PART-TARGET, and a full
			// segment rounds to TARGETDURATION.
			f := newFeeder(t, tc.st, s, rec)
			f.seconds(time.Duration(3*tc.targetDuration) * time.Second)
			pl := rec.last(t).Playlist
			require.Equal(t, tc.partTarget, pl.PartTarget)
			require.NotEmpty(t, pl.Segments)
			for _, seg := range pl.Segments {
				require.Len(t, seg.Parts, tc.partsPerSegment)
				// Each part is truncated to the nanosecond; the segment once.
				require.InDelta(t, time.Duration(tc.partsPerSegment)*tc.partTarget, seg.Duration, float64(tc.partsPerSegment))
				require.Equal(t, tc.targetDuration, int(seg.Duration.Round(time.Second)/time.Second))
				for _, p := range seg.Parts {
					require.Equal(t, tc.partTarget, p.Duration)
				}
			}
		})
	}
}
