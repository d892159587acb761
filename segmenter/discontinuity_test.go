package segmenter_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// TestDiscontinuity follows one discontinuity from the reconnect until its
// segment has slid out of the window (§6.2.2).
func TestDiscontinuity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(f *feeder) // audio before the break
	}{
		{"mid-part", func(f *feeder) { f.seconds(2 * time.Second) }},
		{"on a part boundary", func(f *feeder) { f.frames(10 * 7) }},
		{"on a segment boundary", func(f *feeder) { f.frames(10 * 5 * 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec := newSegmenter(t, segmenter.Presets["low"], aac48k.codec())
			f := newFeeder(t, aac48k, s, rec)
			tc.before(f)
			require.False(t, rec.last(t).Playlist.HasDiscontinuity)
			nBefore := len(rec.updates)
			require.NoError(t, s.Discontinuity())

			// The segment in progress is closed: the next part starts a new
			// segment, which carries the discontinuity.
			pl := rec.last(t).Playlist
			require.Empty(t, pl.Parts, "the part and segment in progress are closed")
			breakMSN := pl.NextMSN()
			if f.total%(10*1024*5) == 0 {
				require.Equal(t, nBefore, len(rec.updates), "nothing in progress: nothing to publish")
			}

			f.frames(10) // one part
			pl = rec.last(t).Playlist
			require.True(t, pl.HasDiscontinuity)
			require.True(t, pl.NextPartDiscontinuity, "the segment in progress follows the break")
			require.Equal(t, breakMSN, pl.NextMSN())
			b, err := pl.Render(false)
			require.NoError(t, err)
			require.Contains(t, string(b), "#EXT-X-DISCONTINUITY-SEQUENCE:0\n")
			require.Regexp(t, `#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXT-X-PART:DURATION=0.21333,URI="[^"]+-`+
				strconv.FormatUint(breakMSN, 10)+`\.0\.m4s"`, string(b), "DISCONTINUITY and PDT come before the first part (§4.4.4.9)")

			// Once closed, the segment carries the flag; the sequence stays
			// 0 while it is in the window and becomes 1 the moment it leaves.
			seen := false
			for !seen {
				f.frames(10)
				pl = rec.last(t).Playlist
				require.True(t, pl.HasDiscontinuity, "DISCONTINUITY-SEQUENCE is kept for good")
				switch {
				case pl.MediaSequence <= breakMSN:
					require.Zero(t, pl.DiscontinuitySequence)
					if len(pl.Segments) > int(breakMSN-pl.MediaSequence) {
						require.True(t, pl.Segments[breakMSN-pl.MediaSequence].Discontinuity)
					}
				default:
					require.Equal(t, uint64(1), pl.DiscontinuitySequence)
					seen = true
				}
				for i, seg := range pl.Segments {
					require.Equal(t, pl.MediaSequence+uint64(i) == breakMSN, seg.Discontinuity, seg.URI)
				}
			}
			// It stays 1, with no DISCONTINUITY tag left, for good.
			f.seconds(30 * time.Second)
			pl = rec.last(t).Playlist
			require.Equal(t, uint64(1), pl.DiscontinuitySequence)
			b, err = pl.Render(false)
			require.NoError(t, err)
			require.Contains(t, string(b), "#EXT-X-DISCONTINUITY-SEQUENCE:1\n")
			require.NotContains(t, string(b), "#EXT-X-DISCONTINUITY\n")
			b, err = pl.Render(true)
			require.NoError(t, err)
			require.Contains(t, string(b), "#EXT-X-DISCONTINUITY-SEQUENCE:1\n", "delta updates keep the sequence of the full playlist")
		})
	}
}

// Consecutive breaks with no audio between them are one discontinuity.
func TestDiscontinuityRepeated(t *testing.T) {
	s, rec := newSegmenter(t, segmenter.Presets["low"], aac48k.codec())
	f := newFeeder(t, aac48k, s, rec)
	f.seconds(time.Second)
	n := len(rec.updates)
	require.NoError(t, s.Discontinuity())
	m := len(rec.updates)
	require.NoError(t, s.Discontinuity())
	require.NoError(t, s.Discontinuity())
	require.Equal(t, m, len(rec.updates), "a second Discontinuity with nothing in progress publishes nothing")
	require.Greater(t, m, n)

	f.seconds(20 * time.Second)
	pl := rec.last(t).Playlist
	require.Equal(t, uint64(1), pl.DiscontinuitySequence)
	for _, seg := range pl.Segments {
		require.False(t, seg.Discontinuity, seg.URI)
	}
}

// After a break, PROGRAM-DATE-TIME re-anchors to the wall clock, so a
// reconnect's gap shows as a forward jump at the DISCONTINUITY; it never goes
// back, even for a publisher that ran ahead of the wall clock. Media
// timestamps (tfdt) run on regardless: the checker verifies them.
func TestDiscontinuityReanchorsPDT(t *testing.T) {
	for _, tc := range []struct {
		name   string
		follow bool          // the clock follows the audio (a real-time publisher)
		gap    time.Duration // time away
		jump   time.Duration // PDT jump at the discontinuity
	}{
		{"real time, no gap", true, 0, 0},
		{"real time, 1.5s away", true, 1500 * time.Millisecond, 1500 * time.Millisecond},
		// The clock stands still: 2 s of audio arrived at once, the
		// publisher is 2 s ahead of the wall clock.
		{"publisher ahead of the clock", false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec := newSegmenter(t, segmenter.Presets["low"], aac48k.codec())
			f := newFeeder(t, aac48k, s, rec)
			if !tc.follow {
				f.clock = nil
			}
			f.seconds(2 * time.Second)
			f.reconnect(tc.gap)
			f.seconds(5 * time.Second)

			pl := rec.last(t).Playlist
			for i := 1; i < len(pl.Segments); i++ {
				prev, cur := pl.Segments[i-1], pl.Segments[i]
				want := prev.Duration
				if cur.Discontinuity {
					want += tc.jump
				}
				require.InDelta(t, want, cur.ProgramDateTime.Sub(prev.ProgramDateTime), 1, cur.URI)
			}
			newChecker(t, aac48k, s, rec.prefix(t)).checkAll(rec.updates)
		})
	}
}
