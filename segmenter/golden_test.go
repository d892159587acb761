package segmenter_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

var update = flag.Bool("update", false, "rewrite the golden playlists in testdata/")

// TestGoldenPlaylists feeds numbered access units through the segmenter, with
// an injected clock that starts at 2026-01-01T00:00:00Z and follows the audio
// (a real-time publisher), and compares the last playlist, full and delta, with
// testdata/<name>.m3u8 and testdata/<name>_delta.m3u8. The random URI prefix
// is replaced by PFX.
func TestGoldenPlaylists(t *testing.T) {
	for _, tc := range []struct {
		name   string
		preset string
		st     stream
		script func(f *feeder)
	}{
		{"low_aac48k_3s", "low", aac48k, func(f *feeder) { f.seconds(3 * time.Second) }},
		// Mid-segment: trailing parts, PROGRAM-DATE-TIME before them, and
		// the preload hint of the next part.
		{"balanced_aac48k_5s", "balanced", aac48k, func(f *feeder) { f.seconds(5 * time.Second) }},
		// The window (12 segments, 48 s) has not slid yet, but the delta
		// update already skips what lies beyond CAN-SKIP-UNTIL (24 s).
		{"scale_aac48k_30s", "scale", aac48k, func(f *feeder) { f.seconds(30 * time.Second) }},
		// The window has slid: the media sequence no longer starts at 0.
		{"scale_aac48k_60s", "scale", aac48k, func(f *feeder) { f.seconds(60 * time.Second) }},
		// The discontinuity cuts a short part; the segment in progress
		// carries DISCONTINUITY and PROGRAM-DATE-TIME before its first part.
		{"low_aac48k_discontinuity", "low", aac48k, func(f *feeder) {
			f.seconds(2 * time.Second)
			require.NoError(f.t, f.seg.Discontinuity())
			f.seconds(500 * time.Millisecond)
		}},
		// A publisher away for 1.5 s: PROGRAM-DATE-TIME jumps at the
		// DISCONTINUITY.
		{"low_aac48k_reconnect", "low", aac48k, func(f *feeder) {
			f.seconds(2 * time.Second)
			f.reconnect(1500 * time.Millisecond)
			f.seconds(2 * time.Second)
		}},
		// Long after the discontinuity: its segment slid out, so
		// DISCONTINUITY-SEQUENCE is 1 and no DISCONTINUITY tag remains.
		{"low_aac48k_discontinuity_slid", "low", aac48k, func(f *feeder) {
			f.seconds(2 * time.Second)
			require.NoError(f.t, f.seg.Discontinuity())
			f.seconds(20 * time.Second)
		}},
		// ENDLIST, no preload hint, the last (short) part closes the last
		// segment.
		{"low_aac48k_ended", "low", aac48k, func(f *feeder) {
			f.seconds(2500 * time.Millisecond)
			f.seg.End()
		}},
		{"low_opus_3500ms", "low", opus48k, func(f *feeder) { f.seconds(3500 * time.Millisecond) }},
		{"low_aac44k_3s", "low", aac44k, func(f *feeder) { f.seconds(3 * time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec := newSegmenter(t, segmenter.Presets[tc.preset], tc.st.codec())
			f := newFeeder(t, tc.st, s, rec)
			f.batch = 3
			tc.script(f)

			pfx := rec.prefix(t)
			pl := rec.last(t).Playlist
			for _, delta := range []bool{false, true} {
				name := tc.name
				if delta {
					name += "_delta"
				}
				b, err := pl.Render(delta)
				require.NoError(t, err)
				got := strings.ReplaceAll(string(b), pfx, "PFX")
				path := filepath.Join("testdata", name+".m3u8")
				if *update {
					require.NoError(t, os.MkdirAll("testdata", 0o755))
					require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
				}
				want, err := os.ReadFile(path)
				require.NoError(t, err, "run go test -update to create it")
				require.Equal(t, string(want), got, "%s differs; run go test -update and review the diff", path)
			}
		})
	}
}
