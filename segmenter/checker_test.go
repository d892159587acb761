package segmenter_test

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/llhls"
	"github.com/amphi-live/amphi/segmenter"
)

// checker replays a broadcast's updates, in order, and checks each against
// the playlist rules of LLHLS.md §1 and against the media objects it carries.
// Time is media time: the end of the newest part, in samples.
type checker struct {
	t    *testing.T
	st   stream
	seg  *segmenter.Segmenter
	pfx  string
	rate int64

	partRe, segRe *regexp.Regexp

	// expectAU returns access unit n as written; nil skips the check.
	expectAU func(n int) []byte
	// lenient skips the rules that hold only for steady, well-formed input:
	// the 85 % part floor, the window length, the parts listed and the
	// retention time. The fuzz test feeds arbitrary packets and sets it.
	lenient bool

	// constants of the broadcast, from the first update
	first *llhls.Playlist

	objects  map[string][]byte    // every object ever added
	live     map[string]bool      // added and not yet removed
	refs     map[string]bool      // referenced by the previous update
	leftAt   map[string]int64     // media time a name stopped being referenced
	samples  map[string]int64     // samples of every part and segment
	startAt  map[string]int64     // first sample of every part and segment
	pdt      map[string]time.Time // PROGRAM-DATE-TIME of every segment
	pending  []string             // parts added since the last segment
	mediaEnd int64                // end of the newest part, in samples
	nextAU   int                  // number of the next access unit expected
	fragSeq  int64                // sequence number of the previous fMP4 fragment

	prev *llhls.Playlist
	// PROGRAM-DATE-TIME is anchor + the sample position, the anchor being set
	// by the first sample and again after each discontinuity.
	anchor    time.Time
	hasAnchor bool
	curPDT    time.Time // of the segment in progress
	lastEnd   time.Time // PDT + duration of the newest complete segment
	// closed segments so far and their total duration
	closed    int
	closedDur time.Duration
	// updates that added no part; only Discontinuity and End make them
	closeOnly int
}

func newChecker(t *testing.T, st stream, seg *segmenter.Segmenter, pfx string) *checker {
	q := regexp.QuoteMeta(pfx)
	return &checker{
		t:        t,
		st:       st,
		seg:      seg,
		pfx:      pfx,
		rate:     st.rate,
		partRe:   regexp.MustCompile(`^` + q + `-(\d+)\.(\d+)\.m4s$`),
		segRe:    regexp.MustCompile(`^` + q + `-(\d+)\.m4s$`),
		objects:  map[string][]byte{},
		live:     map[string]bool{},
		refs:     map[string]bool{},
		leftAt:   map[string]int64{},
		samples:  map[string]int64{},
		startAt:  map[string]int64{},
		pdt:      map[string]time.Time{},
		fragSeq:  -1,
		expectAU: st.au,
	}
}

func (c *checker) td() time.Duration {
	return time.Duration(c.first.TargetDuration) * time.Second
}

// msgFunc builds testify's msgAndArgs, formatted only when a check fails.
type msgFunc func(format string, args ...any) []any

// checkAll checks every update of a broadcast, then its end state.
func (c *checker) checkAll(updates []segmenter.Update) {
	c.t.Helper()
	require.NotEmpty(c.t, updates)
	for k, u := range updates {
		c.check(k, u)
	}
	if c.prev.Ended {
		require.Empty(c.t, c.pending, "parts added after the last segment of an ended broadcast")
	}
}

func (c *checker) check(k int, u segmenter.Update) {
	t := c.t
	t.Helper()
	pl := u.Playlist
	require.NotNil(t, pl, "update %d has no playlist", k)
	if c.prev != nil {
		require.False(t, c.prev.Ended, "update %d follows the ENDLIST playlist", k)
	}
	msg := func(format string, args ...any) []any {
		return append([]any{"update %d (media time %v): " + format, k, samplesToDuration(c.mediaEnd, c.rate)}, args...)
	}

	c.checkConstants(pl, msg)
	newPart := c.checkAdded(u, msg)
	c.checkRemoved(u, msg)
	c.checkReferences(pl, msg)
	c.checkModel(pl, msg)
	c.checkHint(pl, newPart, msg)
	c.checkRendering(pl, msg)
	c.prev = pl
}

func (c *checker) checkConstants(pl *llhls.Playlist, msg msgFunc) {
	t := c.t
	if c.first == nil {
		c.first = pl
		require.Equal(t, c.seg.TargetDuration(), pl.TargetDuration, msg("TARGETDURATION")...)
		require.Equal(t, c.seg.PartTarget(), pl.PartTarget, msg("PART-TARGET")...)
	}
	require.Equal(t, c.first.TargetDuration, pl.TargetDuration, msg("TARGETDURATION changed")...)
	require.Equal(t, c.first.PartTarget, pl.PartTarget, msg("PART-TARGET changed")...)
	require.Equal(t, c.first.PartHoldBack, pl.PartHoldBack, msg("PART-HOLD-BACK changed (CoreMedia stops for good)")...)
	require.Equal(t, c.first.CanSkipUntil, pl.CanSkipUntil, msg("CAN-SKIP-UNTIL changed")...)
	require.Equal(t, c.first.MapURI, pl.MapURI, msg("EXT-X-MAP changed")...)
	require.GreaterOrEqual(t, pl.PartHoldBack, 3*pl.PartTarget, msg("PART-HOLD-BACK < 3 × PART-TARGET")...)
	require.GreaterOrEqual(t, pl.HoldBack, 3*c.td(), msg("HOLD-BACK < 3 × TARGETDURATION")...)
	require.GreaterOrEqual(t, pl.CanSkipUntil, 6*c.td(), msg("CAN-SKIP-UNTIL < 6 × TARGETDURATION")...)
}

// checkAdded checks the new objects and returns the URI of the new part, if
// the update made one.
func (c *checker) checkAdded(u segmenter.Update, msg msgFunc) string {
	t := c.t
	var newPart string
	for _, o := range u.Added {
		_, seen := c.objects[o.Name]
		require.False(t, seen, msg("%s added twice: URIs must never be reused", o.Name)...)
		c.objects[o.Name] = o.Data
		c.live[o.Name] = true

		switch {
		case o.Name == c.pfx+"-init.mp4":
			c.checkInit(o.Data, msg)

		case c.partRe.MatchString(o.Name):
			require.Empty(t, newPart, msg("more than one part in one update")...)
			newPart = o.Name
			c.checkPart(u.Playlist, o, msg)

		case c.segRe.MatchString(o.Name):
			c.checkSegment(u.Playlist, o, msg)

		default:
			require.Fail(t, "unexpected object name", msg("%q", o.Name)...)
		}
	}
	return newPart
}

func (c *checker) checkInit(data []byte, msg msgFunc) {
	t := c.t
	var init fmp4.Init
	require.NoError(t, init.Unmarshal(bytes.NewReader(data)), msg("init section does not parse")...)
	require.Len(t, init.Tracks, 1, msg("init tracks")...)
	tr := init.Tracks[0]
	require.Equal(t, uint32(c.rate), tr.TimeScale, msg("init timescale")...)
	switch want := c.seg.Codec().(type) {
	case *segmenter.AAC:
		got, ok := tr.Codec.(*fmp4.CodecMPEG4Audio)
		require.True(t, ok, msg("init codec is %T, want MPEG-4 Audio", tr.Codec)...)
		require.Equal(t, want.Config.Type, got.Config.Type, msg("init object type")...)
		require.Equal(t, want.Config.SampleRate, got.Config.SampleRate, msg("init sample rate")...)
		require.Equal(t, want.Config.ChannelConfig, got.Config.ChannelConfig, msg("init channel config")...)
	case *segmenter.Opus:
		got, ok := tr.Codec.(*fmp4.CodecOpus)
		require.True(t, ok, msg("init codec is %T, want Opus", tr.Codec)...)
		require.Equal(t, segmenter.Channels(want), got.ChannelCount, msg("init channel count")...)
	default:
		t.Fatalf("unexpected codec %T", want)
	}
}

func (c *checker) checkPart(pl *llhls.Playlist, o segmenter.Object, msg msgFunc) {
	t := c.t
	var parts fmp4.Parts
	require.NoError(t, parts.Unmarshal(o.Data), msg("part %s does not parse", o.Name)...)
	require.Len(t, parts, 1, msg("%s holds %d fMP4 fragments", o.Name, len(parts))...)
	p := parts[0]
	require.Greater(t, int64(p.SequenceNumber), c.fragSeq, msg("%s: fragment sequence number does not increase", o.Name)...)
	c.fragSeq = int64(p.SequenceNumber)
	require.Len(t, p.Tracks, 1, msg("%s tracks", o.Name)...)
	tr := p.Tracks[0]
	require.Equal(t, 1, tr.ID, msg("%s track ID", o.Name)...)
	require.Equal(t, uint64(c.mediaEnd), tr.BaseTime,
		msg("%s: BaseTime does not continue from the previous part's end", o.Name)...)

	var sum int64
	for _, s := range tr.Samples {
		sum += int64(s.Duration)
		// The payload is the access unit as written, in order.
		if c.expectAU != nil {
			require.Equal(t, c.expectAU(c.nextAU), s.Payload, msg("%s: access unit %d missing, altered or out of order", o.Name, c.nextAU)...)
		}
		c.nextAU++
	}
	require.Positive(t, sum, msg("%s is empty", o.Name)...)
	c.samples[o.Name] = sum
	c.startAt[o.Name] = c.mediaEnd
	start := c.mediaEnd
	c.mediaEnd += sum
	first := len(c.pending) == 0
	c.pending = append(c.pending, o.Name)

	mp, ok := findPart(pl, o.Name)
	require.True(t, ok, msg("new part %s is not in the playlist of its update", o.Name)...)
	if first {
		// The part starts a segment: its PROGRAM-DATE-TIME is fixed now.
		pdt, disc := pl.NextProgramDateTime, pl.NextPartDiscontinuity
		if len(pl.Parts) == 0 || pl.Parts[0].URI != o.Name {
			last := pl.Segments[len(pl.Segments)-1] // one-part segment
			pdt, disc = last.ProgramDateTime, last.Discontinuity
		}
		c.segmentStarts(pdt, disc, start, msg)
	}
	require.Equal(t, samplesToDuration(sum, c.rate), mp.Duration,
		msg("%s: EXT-X-PART DURATION is not the sum of its sample durations", o.Name)...)
	require.True(t, mp.Independent, msg("%s: audio parts are independent", o.Name)...)
}

func (c *checker) checkSegment(pl *llhls.Playlist, o segmenter.Object, msg msgFunc) {
	t := c.t
	require.NotEmpty(t, c.pending, msg("segment %s without parts", o.Name)...)
	var concat []byte
	var sum int64
	for _, p := range c.pending {
		concat = append(concat, c.objects[p]...)
		sum += c.samples[p]
	}
	require.True(t, bytes.Equal(concat, o.Data), msg("segment %s is not the concatenation of its parts %v", o.Name, c.pending)...)

	ms, ok := findSegment(pl, o.Name)
	require.True(t, ok, msg("new segment %s is not in the playlist of its update", o.Name)...)
	uris := make([]string, len(ms.Parts))
	for i, p := range ms.Parts {
		uris[i] = p.URI
	}
	require.Equal(t, c.pending, uris, msg("segment %s lists other parts than it holds", o.Name)...)
	require.Equal(t, samplesToDuration(sum, c.rate), ms.Duration, msg("segment %s EXTINF", o.Name)...)
	start := c.startAt[c.pending[0]]
	require.Equal(t, c.curPDT, ms.ProgramDateTime, msg("segment %s PROGRAM-DATE-TIME changed since its first part", o.Name)...)
	c.pdt[o.Name] = ms.ProgramDateTime
	c.lastEnd = ms.ProgramDateTime.Add(ms.Duration)
	c.samples[o.Name] = sum
	c.startAt[o.Name] = start
	c.pending = nil
	c.closed++
	c.closedDur += ms.Duration
}

// segmentStarts checks the PROGRAM-DATE-TIME of a new segment whose first
// sample is start: anchor + start, unless a discontinuity re-anchored it, in
// which case it must not go back before the end of the previous segment.
func (c *checker) segmentStarts(pdt time.Time, disc bool, start int64, msg msgFunc) {
	t := c.t
	require.False(t, pdt.IsZero(), msg("segment without PROGRAM-DATE-TIME")...)
	if disc || !c.hasAnchor {
		if !c.lastEnd.IsZero() {
			require.False(t, pdt.Before(c.lastEnd.Add(-1)),
				msg("PROGRAM-DATE-TIME %v after a discontinuity is before the end %v of the previous segment", pdt, c.lastEnd)...)
		}
		c.anchor, c.hasAnchor = pdt.Add(-samplesToDuration(start, c.rate)), true
	}
	require.Equal(t, c.anchor.Add(samplesToDuration(start, c.rate)), pdt,
		msg("PROGRAM-DATE-TIME is not the anchor + the first sample")...)
	c.curPDT = pdt
}

func (c *checker) checkRemoved(u segmenter.Update, msg msgFunc) {
	t := c.t
	cur := references(u.Playlist)
	for _, name := range u.Removed {
		require.True(t, c.live[name], msg("removed %s, which is not downloadable", name)...)
		delete(c.live, name)
		require.False(t, cur[name], msg("removed %s while the playlist still references it", name)...)
		require.NotEqual(t, u.Playlist.PreloadHint, name, msg("removed the hinted part %s", name)...)
		left, ok := c.leftAt[name]
		require.True(t, ok, msg("removed %s, which never left the playlist", name)...)
		kept := samplesToDuration(c.mediaEnd-left, c.rate)
		if !c.lenient {
			require.GreaterOrEqual(t, kept, 3*c.td(),
				msg("%s downloadable only %v after it left the playlist, want ≥ 3 × target duration", name, kept)...)
		}
	}
}

func (c *checker) checkReferences(pl *llhls.Playlist, msg msgFunc) {
	cur := references(pl)
	for name := range cur {
		c.ok(c.live[name], msg("playlist references %s, which is not downloadable", name))
		_, left := c.leftAt[name]
		c.ok(!left, msg("%s came back into the playlist after leaving it", name))
	}
	for name := range c.refs {
		if !cur[name] {
			c.leftAt[name] = c.mediaEnd
		}
	}
	c.refs = cur
}

func (c *checker) checkModel(pl *llhls.Playlist, msg msgFunc) {
	t := c.t
	td := c.td()
	if c.prev != nil {
		require.GreaterOrEqual(t, pl.MediaSequence, c.prev.MediaSequence, msg("MEDIA-SEQUENCE went back")...)
		require.GreaterOrEqual(t, pl.NextMSN(), c.prev.NextMSN(), msg("next MSN went back")...)
		require.GreaterOrEqual(t, pl.DiscontinuitySequence, c.prev.DiscontinuitySequence, msg("DISCONTINUITY-SEQUENCE went back")...)
		if c.prev.HasDiscontinuity {
			require.True(t, pl.HasDiscontinuity, msg("EXT-X-DISCONTINUITY-SEQUENCE dropped")...)
		}
	}

	var window time.Duration
	for i, s := range pl.Segments {
		c.ok(s.URI == c.segName(pl.MediaSequence+uint64(i)), msg("segment %d is %s", i, s.URI))
		window += s.Duration
		c.ok(int(math.Round(s.Duration.Seconds())) <= pl.TargetDuration,
			msg("%s EXTINF %v rounds above TARGETDURATION", s.URI, s.Duration))
		c.ok(!s.ProgramDateTime.IsZero(), msg("%s has no PROGRAM-DATE-TIME", s.URI))
		c.ok(s.ProgramDateTime.Equal(c.pdt[s.URI]), msg("%s PROGRAM-DATE-TIME changed to %v", s.URI, s.ProgramDateTime))
		if i > 0 {
			p := pl.Segments[i-1]
			// Both are truncated to the nanosecond from exact sample counts.
			step := s.ProgramDateTime.Sub(p.ProgramDateTime)
			if s.Discontinuity {
				c.ok(step-p.Duration >= -1, msg("%s PROGRAM-DATE-TIME went back across a discontinuity", s.URI))
			} else {
				c.ok(step-p.Duration >= -1 && step-p.Duration <= 1,
					msg("%s PROGRAM-DATE-TIME is %v after the previous one, which lasts %v", s.URI, step, p.Duration))
			}
		}
		c.checkParts(s.Parts, msg)
		for j, p := range s.Parts {
			c.ok(p.URI == c.partName(pl.MediaSequence+uint64(i), j), msg("part %d of %s is %s", j, s.URI, p.URI))
		}
	}
	c.checkParts(pl.Parts, msg)
	for j, p := range pl.Parts {
		c.ok(p.URI == c.partName(pl.NextMSN(), j), msg("trailing part %d is %s", j, p.URI))
	}
	if len(pl.Parts) > 0 {
		require.Equal(t, c.curPDT, pl.NextProgramDateTime, msg("PROGRAM-DATE-TIME of the segment in progress")...)
	}
	if pl.Ended {
		require.Empty(t, pl.Parts, msg("an ended playlist has parts outside a segment")...)
	}

	if c.lenient {
		return
	}

	// Parts younger than 3 target durations stay listed (§4.4.4.9).
	var fromEnd time.Duration
	for _, p := range pl.Parts {
		fromEnd += p.Duration
	}
	for i := len(pl.Segments) - 1; i >= 0; i-- {
		if fromEnd < 3*td {
			require.NotEmpty(t, pl.Segments[i].Parts,
				msg("%s ends %v before the playlist end but lists no parts", pl.Segments[i].URI, fromEnd)...)
		}
		fromEnd += pl.Segments[i].Duration
	}

	// Window: ≥ 3 target durations and ≥ 6 segments once that much exists.
	if c.closedDur >= 3*td {
		require.GreaterOrEqual(t, window, 3*td, msg("window of %v is shorter than 3 × target duration", window)...)
	}
	if c.closed >= 6 {
		require.GreaterOrEqual(t, len(pl.Segments), 6, msg("window of fewer than 6 segments")...)
	}
}

// checkParts checks part durations; within a complete segment the last part
// may be short, and among trailing parts the newest may turn out to be the
// last of its segment (a discontinuity or the end cut it).
func (c *checker) checkParts(parts []llhls.Part, msg msgFunc) {
	pt := c.first.PartTarget
	for j, p := range parts {
		c.ok(p.Duration <= pt, msg("%s lasts %v, longer than PART-TARGET %v", p.URI, p.Duration, pt))
		if j == len(parts)-1 || c.lenient {
			continue
		}
		c.ok(p.Duration*100 >= pt*85,
			msg("%s lasts %v, under 85%% of PART-TARGET %v and not the last part of its segment", p.URI, p.Duration, pt))
	}
}

// ok fails the test with msgAndArgs unless cond holds; unlike require it
// costs nothing when cond holds, which matters in per-part loops.
func (c *checker) ok(cond bool, msgAndArgs []any) {
	if !cond {
		c.t.Helper()
		require.Fail(c.t, "rule broken", msgAndArgs...)
	}
}

func (c *checker) checkHint(pl *llhls.Playlist, newPart string, msg msgFunc) {
	t := c.t
	if pl.Ended {
		require.Empty(t, pl.PreloadHint, msg("preload hint in an ended playlist")...)
	} else {
		require.Equal(t, c.partName(pl.NextMSN(), len(pl.Parts)), pl.PreloadHint, msg("preload hint is not the next part")...)
		_, exists := c.objects[pl.PreloadHint]
		require.False(t, exists, msg("preload hint %s names an existing object", pl.PreloadHint)...)
	}
	if newPart == "" {
		// Only a discontinuity or the end closes a segment without a new part.
		c.closeOnly++
		return
	}
	if c.prev != nil && c.prev.PreloadHint != "" {
		require.Equal(t, c.prev.PreloadHint, newPart, msg("the new part is not the one the previous update hinted")...)
	}
}

func (c *checker) checkRendering(pl *llhls.Playlist, msg msgFunc) {
	t := c.t
	for _, delta := range []bool{false, true} {
		b, err := pl.Render(delta)
		require.NoError(t, err, msg("render delta=%v", delta)...)
		if len(pl.Segments) == 0 {
			// gohlslib refuses playlists without segments ("no segments
			// found"); check the essentials by hand.
			require.Contains(t, string(b), "#EXT-X-PART-INF:PART-TARGET=", msg("no PART-INF")...)
			if !pl.Ended {
				require.Contains(t, string(b), "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""+pl.PreloadHint+"\"", msg("no preload hint")...)
			}
			continue
		}
		parsed, err := playlist.Unmarshal(b)
		require.NoError(t, err, msg("gohlslib cannot parse delta=%v:\n%s", delta, b)...)
		m, ok := parsed.(*playlist.Media)
		require.True(t, ok, msg("not a media playlist")...)
		c.checkParsed(pl, m, delta, b, msg)
	}
}

func (c *checker) checkParsed(pl *llhls.Playlist, m *playlist.Media, delta bool, b []byte, msg msgFunc) {
	t := c.t
	where := func(what string) []any { return msg("rendered (delta=%v) %s:\n%s", delta, what, b) }
	require.Equal(t, pl.TargetDuration, m.TargetDuration, where("TARGETDURATION")...)
	require.Equal(t, int(pl.MediaSequence), m.MediaSequence, where("MEDIA-SEQUENCE")...)
	require.Equal(t, pl.Ended, m.Endlist, where("ENDLIST")...)
	require.NotNil(t, m.PartInf, where("PART-INF")...)
	require.NotNil(t, m.ServerControl, where("SERVER-CONTROL")...)
	pt := m.PartInf.PartTarget
	if !pl.Ended {
		require.True(t, m.ServerControl.CanBlockReload, where("CAN-BLOCK-RELOAD")...)
	}
	require.NotNil(t, m.ServerControl.PartHoldBack, where("PART-HOLD-BACK")...)
	require.GreaterOrEqual(t, *m.ServerControl.PartHoldBack, 3*pt-10*time.Microsecond, where("PART-HOLD-BACK < 3 × PART-TARGET")...)
	require.NotNil(t, m.ServerControl.CanSkipUntil, where("CAN-SKIP-UNTIL")...)
	require.GreaterOrEqual(t, *m.ServerControl.CanSkipUntil, 6*time.Duration(m.TargetDuration)*time.Second, where("CAN-SKIP-UNTIL")...)
	require.NotNil(t, m.Map, where("MAP")...)
	require.Equal(t, pl.MapURI, m.Map.URI, where("MAP")...)
	if pl.HasDiscontinuity {
		require.NotNil(t, m.DiscontinuitySequence, where("DISCONTINUITY-SEQUENCE")...)
		require.Equal(t, int(pl.DiscontinuitySequence), *m.DiscontinuitySequence, where("DISCONTINUITY-SEQUENCE")...)
	}

	skipped := 0
	switch {
	case delta && !pl.Ended:
		require.NotNil(t, m.Skip, where("EXT-X-SKIP in a live delta update")...)
	case !delta:
		require.Nil(t, m.Skip, where("EXT-X-SKIP in a full playlist")...)
	}
	if m.Skip != nil {
		skipped = m.Skip.SkippedSegments
		// Only segments beyond the skip boundary may be skipped.
		var kept time.Duration
		for _, s := range pl.Segments[skipped:] {
			kept += s.Duration
		}
		for _, p := range pl.Parts {
			kept += p.Duration
		}
		if skipped > 0 {
			require.GreaterOrEqual(t, kept, pl.CanSkipUntil, where("skipped segments within CAN-SKIP-UNTIL of the end")...)
		}
	}
	require.Len(t, m.Segments, len(pl.Segments)-skipped, where("segments")...)
	for i, s := range m.Segments {
		ms := pl.Segments[skipped+i]
		c.ok(s.URI == ms.URI, where("segment URI"))
		c.ok(s.Discontinuity == ms.Discontinuity, where("DISCONTINUITY"))
		c.ok(int(math.Round(s.Duration.Seconds())) <= m.TargetDuration, where("EXTINF above TARGETDURATION"))
		c.ok(s.DateTime != nil, where("PROGRAM-DATE-TIME missing"))
		// Rendered with millisecond precision.
		d := s.DateTime.Sub(ms.ProgramDateTime)
		c.ok(d > -time.Millisecond && d < time.Millisecond, where("PROGRAM-DATE-TIME"))
		c.ok(len(s.Parts) == len(ms.Parts), where("parts listed"))
		for _, p := range s.Parts {
			c.ok(p.Duration <= pt, where("part longer than PART-TARGET"))
		}
	}
	require.Len(t, m.Parts, len(pl.Parts), where("trailing parts")...)
	for i, p := range m.Parts {
		c.ok(p.URI == pl.Parts[i].URI, where("trailing part URI"))
		c.ok(p.Duration <= pt, where("part longer than PART-TARGET"))
	}
	if pl.Ended {
		require.Nil(t, m.PreloadHint, where("preload hint after ENDLIST")...)
	} else {
		require.NotNil(t, m.PreloadHint, where("preload hint")...)
		require.Equal(t, pl.PreloadHint, m.PreloadHint.URI, where("preload hint")...)
	}
}

func (c *checker) segName(msn uint64) string {
	return c.pfx + "-" + strconv.FormatUint(msn, 10) + ".m4s"
}

func (c *checker) partName(msn uint64, i int) string {
	return c.pfx + "-" + strconv.FormatUint(msn, 10) + "." + strconv.Itoa(i) + ".m4s"
}

// references is every URI the playlist names, the preload hint aside.
func references(pl *llhls.Playlist) map[string]bool {
	refs := map[string]bool{}
	if pl.MapURI != "" {
		refs[pl.MapURI] = true
	}
	for _, s := range pl.Segments {
		refs[s.URI] = true
		for _, p := range s.Parts {
			refs[p.URI] = true
		}
	}
	for _, p := range pl.Parts {
		refs[p.URI] = true
	}
	return refs
}

func findPart(pl *llhls.Playlist, uri string) (llhls.Part, bool) {
	for _, p := range pl.Parts {
		if p.URI == uri {
			return p, true
		}
	}
	for _, s := range pl.Segments {
		for _, p := range s.Parts {
			if p.URI == uri {
				return p, true
			}
		}
	}
	return llhls.Part{}, false
}

func findSegment(pl *llhls.Playlist, uri string) (llhls.Segment, bool) {
	for _, s := range pl.Segments {
		if s.URI == uri {
			return s, true
		}
	}
	return llhls.Segment{}, false
}
