package llhls

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden playlists in testdata/")

// The test broadcast: AAC-LC at 48 kHz, parts of 10 frames (213.333 ms, the
// longest real part, hence PART-TARGET), four full parts and a 6-frame
// (128 ms) last part per segment.
const (
	testPartTarget = 213333333 * time.Nanosecond
	testLastPart   = 128 * time.Millisecond
	testPartsPer   = 5
	testSegDur     = 4*testPartTarget + testLastPart
)

var testEpoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testPDT(msn uint64) time.Time {
	return testEpoch.Add(time.Duration(msn) * testSegDur)
}

func testParts(msn uint64, n int) []Part {
	ps := make([]Part, n)
	for i := range ps {
		ps[i] = Part{
			Duration:    testPartTarget,
			URI:         fmt.Sprintf("part%d.%d.m4s", msn, i),
			Independent: i == 0,
		}
		if i == testPartsPer-1 {
			ps[i].Duration = testLastPart
		}
	}
	return ps
}

func testSegment(msn uint64, withParts bool) Segment {
	s := Segment{Duration: testSegDur, URI: fmt.Sprintf("seg%d.m4s", msn), ProgramDateTime: testPDT(msn)}
	if withParts {
		s.Parts = testParts(msn, testPartsPer)
	}
	return s
}

// testLive builds a live LL playlist starting at first with n complete
// segments (the last partsListed of them list their parts) and trailing
// complete parts of the segment in progress.
func testLive(first uint64, n, partsListed, trailing int) *Playlist {
	p := &Playlist{
		TargetDuration: 1,
		PartTarget:     testPartTarget,
		PartHoldBack:   640 * time.Millisecond,
		HoldBack:       3 * time.Second,
		CanSkipUntil:   6 * time.Second,
		MediaSequence:  first,
		MapURI:         "init.mp4",
	}
	for i := range n {
		p.Segments = append(p.Segments, testSegment(first+uint64(i), i >= n-partsListed))
	}
	next := p.NextMSN()
	p.Parts = testParts(next, trailing)
	p.NextProgramDateTime = testPDT(next)
	p.PreloadHint = fmt.Sprintf("part%d.%d.m4s", next, trailing)
	return p
}

func liveLLPlaylist() *Playlist {
	p := testLive(100, 3, 2, 2)
	p.RenditionReports = []RenditionReport{
		{URI: "hi.m3u8", LastMSN: 103, LastPart: 1},
		{URI: "lo.m3u8", LastMSN: 102, LastPart: -1},
	}
	return p
}

func endedPlaylist() *Playlist {
	p := testLive(100, 4, 2, 0)
	p.NextProgramDateTime = time.Time{}
	p.Ended = true // the preload hint testLive set must not be rendered
	return p
}

func discontinuityPlaylist() *Playlist {
	p := testLive(200, 3, 2, 2)
	p.HasDiscontinuity = true
	p.DiscontinuitySequence = 2
	p.Segments[1].Discontinuity = true
	p.NextPartDiscontinuity = true
	return p
}

func longPlaylist() *Playlist { return testLive(1000, 20, 2, 2) }

func noPartsPlaylist() *Playlist {
	p := &Playlist{TargetDuration: 2, MediaSequence: 7}
	for i := range 3 {
		p.Segments = append(p.Segments, Segment{Duration: 2 * time.Second, URI: fmt.Sprintf("s%d.ts", 7+i)})
	}
	return p
}

// renderCases are the golden playlists (testdata/*.m3u8; -update rewrites
// them).
var renderCases = []struct {
	golden string
	pl     func() *Playlist
	delta  bool
}{
	{golden: "live_ll.m3u8", pl: liveLLPlaylist},
	{golden: "ended.m3u8", pl: endedPlaylist},
	{golden: "discontinuity.m3u8", pl: discontinuityPlaylist},
	{golden: "delta.m3u8", pl: longPlaylist, delta: true},
	{golden: "no_parts.m3u8", pl: noPartsPlaylist},
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := tc.pl().Render(tc.delta)
			require.NoError(t, err)
			path := filepath.Join("testdata", tc.golden)
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -update to create it")
			require.Equal(t, string(want), string(got))
		})
	}
}

func mustRender(t *testing.T, p *Playlist, delta bool) string {
	t.Helper()
	b, err := p.Render(delta)
	require.NoError(t, err)
	return string(b)
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func indexOfPrefix(ls []string, prefix string) int {
	for i, l := range ls {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

// Every rendering must be readable by a real parser, and what the parser
// reads back must be the model.
func TestRenderReparses(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.golden, func(t *testing.T) {
			p := tc.pl()
			text := mustRender(t, p, tc.delta)
			parsed, err := playlist.Unmarshal([]byte(text))
			require.NoError(t, err)
			m, ok := parsed.(*playlist.Media)
			require.True(t, ok, "parsed as %T", parsed)

			require.GreaterOrEqual(t, m.Version, 9)
			require.Equal(t, p.TargetDuration, m.TargetDuration)
			require.Equal(t, int(p.MediaSequence), m.MediaSequence)
			require.Equal(t, p.Ended, m.Endlist)

			skipped := 0
			if tc.delta {
				require.NotNil(t, m.Skip)
				skipped = m.Skip.SkippedSegments
			} else {
				require.Nil(t, m.Skip)
			}
			require.Len(t, m.Segments, len(p.Segments)-skipped)
			for i, ms := range m.Segments {
				s := p.Segments[skipped+i]
				require.Equal(t, s.URI, ms.URI)
				require.InDelta(t, s.Duration.Seconds(), ms.Duration.Seconds(), 1e-5)
				require.Equal(t, s.Discontinuity, ms.Discontinuity, s.URI)
				require.Len(t, ms.Parts, len(s.Parts), s.URI)
				if !s.ProgramDateTime.IsZero() {
					require.NotNil(t, ms.DateTime, s.URI)
					require.True(t, s.ProgramDateTime.Truncate(time.Millisecond).Equal(*ms.DateTime),
						"%s: PDT %v, want %v", s.URI, *ms.DateTime, s.ProgramDateTime)
				}
			}
			require.Len(t, m.Parts, len(p.Parts))
			for i, mp := range m.Parts {
				require.Equal(t, p.Parts[i].URI, mp.URI)
				require.Equal(t, p.Parts[i].Independent, mp.Independent)
			}
			if p.PreloadHint != "" && !p.Ended {
				require.NotNil(t, m.PreloadHint)
				require.Equal(t, p.PreloadHint, m.PreloadHint.URI)
			} else {
				require.Nil(t, m.PreloadHint)
			}
			require.Len(t, m.RenditionReport, len(p.RenditionReports))
			if p.HasDiscontinuity {
				require.NotNil(t, m.DiscontinuitySequence)
				require.Equal(t, int(p.DiscontinuitySequence), *m.DiscontinuitySequence)
			} else {
				require.Nil(t, m.DiscontinuitySequence)
			}
			if p.MapURI != "" {
				require.NotNil(t, m.Map)
				require.Equal(t, p.MapURI, m.Map.URI)
			}
			if p.PartTarget > 0 {
				require.NotNil(t, m.PartInf)
				require.InDelta(t, p.PartTarget.Seconds(), m.PartInf.PartTarget.Seconds(), 1e-5)
				require.NotNil(t, m.ServerControl)
				require.True(t, m.ServerControl.CanBlockReload)
			} else {
				require.Nil(t, m.PartInf)
				require.Nil(t, m.ServerControl)
			}
		})
	}
}

// attrList matches an attribute-list (§4.2) of plain (unquoted) values.
var attrList = regexp.MustCompile(`^[A-Z0-9-]+=[^,"]+(,[A-Z0-9-]+=[^,"]+)*$`)

// PART-HOLD-BACK must never change between reloads (CoreMedia stops on
// "illegal PART-HOLD-BACK change"), so it must survive every rendering,
// the final one included.
func TestRenderServerControlAttributeList(t *testing.T) {
	for _, tc := range renderCases {
		if tc.pl().PartTarget == 0 {
			continue
		}
		t.Run(tc.golden, func(t *testing.T) {
			p := tc.pl()
			ls := lines(mustRender(t, p, tc.delta))
			i := indexOfPrefix(ls, "#EXT-X-SERVER-CONTROL:")
			require.GreaterOrEqual(t, i, 0)
			require.Regexp(t, attrList, strings.TrimPrefix(ls[i], "#EXT-X-SERVER-CONTROL:"))

			parsed, err := playlist.Unmarshal([]byte(strings.Join(ls, "\n") + "\n"))
			require.NoError(t, err)
			sc := parsed.(*playlist.Media).ServerControl
			require.NotNil(t, sc.PartHoldBack, "PART-HOLD-BACK lost")
			require.Equal(t, p.PartHoldBack, *sc.PartHoldBack)
			require.NotNil(t, sc.CanSkipUntil, "CAN-SKIP-UNTIL lost")
			require.Equal(t, p.CanSkipUntil, *sc.CanSkipUntil)
		})
	}
}

func TestRenderEndedRules(t *testing.T) {
	p := endedPlaylist()
	require.NotEmpty(t, p.PreloadHint, "the test needs a hint that must be dropped")
	text := mustRender(t, p, false)
	ls := lines(text)

	require.Equal(t, "#EXT-X-ENDLIST", ls[len(ls)-1])
	require.NotContains(t, text, "#EXT-X-PRELOAD-HINT")
	// SERVER-CONTROL stays byte-identical to the live playlists' line: a
	// change in the final reload would be an "illegal PART-HOLD-BACK change".
	live := *p
	live.Ended = false
	liveLines := lines(mustRender(t, &live, false))
	i, j := indexOfPrefix(ls, "#EXT-X-SERVER-CONTROL:"), indexOfPrefix(liveLines, "#EXT-X-SERVER-CONTROL:")
	require.Equal(t, liveLines[j], ls[i])
	// The part tags of the final segments stay.
	require.Contains(t, text, `#EXT-X-PART:DURATION=0.21333,URI="part103.0.m4s",INDEPENDENT=YES`)
}

func TestRenderLiveRules(t *testing.T) {
	text := mustRender(t, liveLLPlaylist(), false)
	ls := lines(text)

	require.Equal(t, "#EXTM3U", ls[0])
	require.Contains(t, ls, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=0.64000,CAN-SKIP-UNTIL=6.00000")
	require.Contains(t, ls, "#EXT-X-PART-INF:PART-TARGET=0.21333")
	require.Contains(t, ls, "#EXT-X-TARGETDURATION:1")
	require.Contains(t, ls, `#EXT-X-MAP:URI="init.mp4"`)
	require.NotContains(t, text, "#EXT-X-ENDLIST")
	require.NotContains(t, text, "#EXT-X-SKIP")
	require.NotContains(t, text, "#EXT-X-DISCONTINUITY")
	require.Equal(t, `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part103.2.m4s"`, ls[indexOfPrefix(ls, "#EXT-X-PRELOAD-HINT:")])
	require.Contains(t, ls, `#EXT-X-RENDITION-REPORT:URI="hi.m3u8",LAST-MSN=103,LAST-PART=1`)
	require.Contains(t, ls, `#EXT-X-RENDITION-REPORT:URI="lo.m3u8",LAST-MSN=102`)

	// The hint comes after the last part, and the rendition reports after it.
	hint := indexOfPrefix(ls, "#EXT-X-PRELOAD-HINT:")
	require.Equal(t, `#EXT-X-PART:DURATION=0.21333,URI="part103.1.m4s"`, ls[hint-1])
	require.Less(t, hint, indexOfPrefix(ls, "#EXT-X-RENDITION-REPORT:"))

	// Every EXTINF rounds to at most the target duration (§4.4.3.1).
	for _, l := range ls {
		if v, ok := strings.CutPrefix(l, "#EXTINF:"); ok {
			var d float64
			_, err := fmt.Sscanf(strings.TrimSuffix(v, ","), "%f", &d)
			require.NoError(t, err)
			require.LessOrEqual(t, int(d+0.5), 1, l)
		}
	}
}

// Tags that apply to the segment in progress (DISCONTINUITY,
// PROGRAM-DATE-TIME) come after the previous segment's URI and before the
// segment's first EXT-X-PART (§4.4.4.9).
func TestRenderTrailingSegmentTags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pl       func() *Playlist
		wantTags []string
	}{
		{"live", liveLLPlaylist, []string{"#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:01:41.077Z"}},
		{"discontinuity", discontinuityPlaylist, []string{
			"#EXT-X-DISCONTINUITY",
			"#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:03:19.21Z",
		}},
		{"discontinuity without PDT", func() *Playlist {
			p := discontinuityPlaylist()
			p.NextProgramDateTime = time.Time{}
			return p
		}, []string{"#EXT-X-DISCONTINUITY"}},
		{"no PDT", func() *Playlist {
			p := liveLLPlaylist()
			p.NextProgramDateTime = time.Time{}
			return p
		}, nil},
		{"no segments yet", func() *Playlist {
			p := testLive(0, 0, 0, 2)
			p.NextPartDiscontinuity = true
			return p
		}, []string{"#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:00:00Z"}},
		{"PDT in another zone is written in UTC", func() *Playlist {
			p := liveLLPlaylist()
			p.NextProgramDateTime = p.NextProgramDateTime.In(time.FixedZone("CET", 3600))
			return p
		}, []string{"#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:01:41.077Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pl()
			ls := lines(mustRender(t, p, false))
			first := -1
			for i, l := range ls {
				if strings.HasPrefix(l, "#EXT-X-PART:") && strings.Contains(l, fmt.Sprintf(`URI="%s"`, p.Parts[0].URI)) {
					first = i
				}
			}
			require.Positive(t, first, "first trailing part not found")
			// Everything between the last segment URI (or the header) and
			// the first trailing part.
			start := first
			for start > 0 && (ls[start-1] == "#EXT-X-DISCONTINUITY" ||
				strings.HasPrefix(ls[start-1], "#EXT-X-PROGRAM-DATE-TIME:")) {
				start--
			}
			got := ls[start:first]
			if len(got) == 0 {
				got = nil
			}
			require.Equal(t, tc.wantTags, got)
			if len(p.Segments) > 0 {
				require.Equal(t, p.Segments[len(p.Segments)-1].URI, ls[start-1])
			}
			// Each tag appears exactly where it belongs, once.
			require.Equal(t, countDiscontinuities(p), strings.Count(strings.Join(ls, "\n"), "#EXT-X-DISCONTINUITY\n"))
		})
	}
}

func countDiscontinuities(p *Playlist) int {
	n := 0
	for _, s := range p.Segments {
		if s.Discontinuity {
			n++
		}
	}
	if p.NextPartDiscontinuity && len(p.Parts) > 0 {
		n++
	}
	return n
}

func TestRenderDiscontinuity(t *testing.T) {
	text := mustRender(t, discontinuityPlaylist(), false)
	ls := lines(text)
	seq := indexOfPrefix(ls, "#EXT-X-DISCONTINUITY-SEQUENCE:")
	require.Equal(t, "#EXT-X-DISCONTINUITY-SEQUENCE:2", ls[seq])
	require.Less(t, seq, indexOfPrefix(ls, "#EXTINF:"))

	// The segment's DISCONTINUITY and PDT come before its first part.
	d := -1
	for i, l := range ls {
		if l == "#EXT-X-DISCONTINUITY" {
			d = i
			break
		}
	}
	require.Equal(t, "seg200.m4s", ls[d-1])
	require.True(t, strings.HasPrefix(ls[d+1], "#EXT-X-PROGRAM-DATE-TIME:"), ls[d+1])
	require.Equal(t, `#EXT-X-PART:DURATION=0.21333,URI="part201.0.m4s",INDEPENDENT=YES`, ls[d+2])

	// A window that slid past its discontinuity keeps the sequence tag.
	p := discontinuityPlaylist()
	p.Segments[1].Discontinuity = false
	p.NextPartDiscontinuity = false
	p.DiscontinuitySequence = 3
	text = mustRender(t, p, false)
	require.Contains(t, text, "#EXT-X-DISCONTINUITY-SEQUENCE:3\n")
	require.NotContains(t, text, "#EXT-X-DISCONTINUITY\n")

	// A broadcast without one carries neither.
	text = mustRender(t, liveLLPlaylist(), false)
	require.NotContains(t, text, "#EXT-X-DISCONTINUITY")
}

func TestRenderDelta(t *testing.T) {
	p := longPlaylist()
	full := mustRender(t, p, false)
	delta := mustRender(t, p, true)
	ls := lines(delta)

	require.NotContains(t, full, "#EXT-X-SKIP")
	require.Contains(t, ls, "#EXT-X-VERSION:9")
	require.Contains(t, ls, "#EXT-X-MEDIA-SEQUENCE:1000", "the sequence number still counts skipped segments")
	skip := indexOfPrefix(ls, "#EXT-X-SKIP:")
	require.Equal(t, "#EXT-X-SKIP:SKIPPED-SEGMENTS=14", ls[skip])
	// Each of 20 segments lasts 0.98133 s, two trailing parts 0.42667 s:
	// the last five segments and the parts lie within 6 s of the end, the
	// sixth from the end straddles the boundary and stays.
	require.Equal(t, "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:16:35.071Z", ls[skip+1])
	require.Equal(t, "seg1014.m4s", ls[indexOfPrefix(ls, "seg")])
	require.NotContains(t, delta, "seg1013.m4s")
	require.Less(t, len(delta), len(full))

	// The tail after the skipped segments is the full rendering's tail.
	tail := delta[strings.Index(delta, ls[skip+1]):]
	require.True(t, strings.HasSuffix(full, tail))
	require.True(t, strings.HasPrefix(full, delta[:strings.Index(delta, "#EXT-X-SKIP:")]))
}

func TestSkippable(t *testing.T) {
	sec := func(n int, d time.Duration) []Segment {
		s := make([]Segment, n)
		for i := range s {
			s[i] = Segment{Duration: d, URI: fmt.Sprintf("s%d", i)}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		p    Playlist
		want int
	}{
		{"delta updates off", Playlist{Segments: sec(20, time.Second)}, 0},
		{"ended", Playlist{Segments: sec(20, time.Second), CanSkipUntil: 6 * time.Second, Ended: true}, 0},
		{"no segments", Playlist{CanSkipUntil: 6 * time.Second}, 0},
		{"all within the boundary", Playlist{Segments: sec(5, time.Second), CanSkipUntil: 6 * time.Second}, 0},
		{"exactly the boundary", Playlist{Segments: sec(6, time.Second), CanSkipUntil: 6 * time.Second}, 0},
		{"only the first segment straddles", Playlist{Segments: sec(7, time.Second), CanSkipUntil: 6500 * time.Millisecond}, 0},
		// Segment 12 ends exactly 6 s before the end: not further, stays.
		{"boundary on a segment edge", Playlist{Segments: sec(20, time.Second), CanSkipUntil: 6 * time.Second}, 13},
		{"boundary inside a segment", Playlist{Segments: sec(20, time.Second), CanSkipUntil: 5500 * time.Millisecond}, 14},
		{"trailing parts count", Playlist{
			Segments: sec(20, time.Second), CanSkipUntil: 6 * time.Second,
			Parts: []Part{{Duration: 500 * time.Millisecond}},
		}, 14},
		{"one segment longer than the boundary", Playlist{Segments: sec(3, 10*time.Second), CanSkipUntil: 6 * time.Second}, 2},
		{"long playlist", *longPlaylist(), 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.skippable()
			require.Equal(t, tc.want, got)
			if got == 0 || tc.p.CanSkipUntil == 0 {
				return
			}
			// What stays covers the boundary; without its first segment it
			// would not.
			var kept time.Duration
			for _, pt := range tc.p.Parts {
				kept += pt.Duration
			}
			for _, s := range tc.p.Segments[got+1:] {
				kept += s.Duration
			}
			require.LessOrEqual(t, kept, tc.p.CanSkipUntil)
			kept += tc.p.Segments[got].Duration
			require.Greater(t, kept, tc.p.CanSkipUntil)
		})
	}
}

// A playlist that offers no delta updates must answer _HLS_skip with the
// full playlist (§6.2.5.1): no EXT-X-SKIP.
func TestRenderDeltaWhenNotOffered(t *testing.T) {
	for _, tc := range []struct {
		name string
		pl   func() *Playlist
	}{
		{"CAN-SKIP-UNTIL off", func() *Playlist {
			p := longPlaylist()
			p.CanSkipUntil = 0
			return p
		}},
		{"ended", func() *Playlist {
			p := longPlaylist()
			p.Ended = true
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pl()
			delta := mustRender(t, p, true)
			require.NotContains(t, delta, "#EXT-X-SKIP")
			require.Equal(t, mustRender(t, p, false), delta)
		})
	}
}

// Playlist.HoldBack is documented as the distance for players without parts
// (HOLD-BACK ≥ 3 × target duration, LLHLS.md §1); the segmenter sets it.
func TestRenderHoldBack(t *testing.T) {
	ls := lines(mustRender(t, liveLLPlaylist(), false))
	sc := ls[indexOfPrefix(ls, "#EXT-X-SERVER-CONTROL:")]
	require.Regexp(t, `[:,]HOLD-BACK=3\.0+(,|$)`, sc)
}

func TestRenderNoParts(t *testing.T) {
	text := mustRender(t, noPartsPlaylist(), false)
	require.NotContains(t, text, "#EXT-X-SERVER-CONTROL")
	require.NotContains(t, text, "#EXT-X-PART")
	require.NotContains(t, text, "#EXT-X-PRELOAD-HINT")
	require.Contains(t, text, "#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n")
}

func TestPlaylistNextMSN(t *testing.T) {
	for _, tc := range []struct {
		p    *Playlist
		want uint64
	}{
		{&Playlist{}, 0},
		{&Playlist{MediaSequence: 9}, 9},
		{liveLLPlaylist(), 103},
		{longPlaylist(), 1020},
	} {
		require.Equal(t, tc.want, tc.p.NextMSN())
	}
}

func TestAdvancePartLimit(t *testing.T) {
	for _, tc := range []struct {
		partTarget time.Duration
		want       int
	}{
		{0, 3},
		{100 * time.Millisecond, 30},
		{200 * time.Millisecond, 15},
		{testPartTarget, 15},
		{250 * time.Millisecond, 12},
		{500 * time.Millisecond, 6},
		{999 * time.Millisecond, 4},
		{time.Second, 3},
		{2 * time.Second, 3},
	} {
		t.Run(tc.partTarget.String(), func(t *testing.T) {
			p := &Playlist{PartTarget: tc.partTarget}
			require.Equal(t, tc.want, p.AdvancePartLimit())
		})
	}
}

func BenchmarkRender(b *testing.B) {
	p := longPlaylist()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Render(false); err != nil {
			b.Fatal(err)
		}
	}
}
