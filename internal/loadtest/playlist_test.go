package loadtest

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustTime(t *testing.T, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return tm.UnixNano()
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

func TestParseOriginPlaylist(t *testing.T) {
	var pl mediaPlaylist
	require.NoError(t, pl.parse(readTestdata(t, "origin_live.m3u8")))
	require.Equal(t, time.Second, pl.targetDuration)
	require.Equal(t, 213330*time.Microsecond, pl.partTarget)
	require.Equal(t, 640*time.Millisecond, pl.partHoldBack)
	require.Equal(t, 3*time.Second, pl.holdBack)
	require.Equal(t, 6*time.Second, pl.canSkipUntil)
	require.True(t, pl.canBlockReload)
	require.True(t, pl.timed)
	require.False(t, pl.ended)
	require.Equal(t, "89709535-init.mp4", string(pl.mapURI))
	require.Equal(t, "89709535-838.2.m4s", string(pl.hint))

	require.Len(t, pl.segs, 13)
	require.EqualValues(t, 826, pl.segs[0].msn)
	require.EqualValues(t, 838, pl.lastMSN())
	require.Equal(t, partPos{msn: 838, idx: 2}, pl.nextPart())
	require.True(t, pl.has(partPos{msn: 838, idx: 1}))
	require.False(t, pl.has(partPos{msn: 838, idx: 2}))

	last := pl.seg(838)
	require.False(t, last.complete)
	require.Equal(t, 2, last.p1-last.p0)
	// The trailing parts are dated by their own PROGRAM-DATE-TIME.
	pdt := mustTime(t, "2026-11-27T04:52:33.399Z")
	require.Equal(t, pdt, pl.parts[last.p0].start)
	require.Equal(t, pdt+int64(2*213330*time.Microsecond), pl.liveEdge(true))
	require.Equal(t, "89709535-838.1.m4s", string(pl.parts[last.p0+1].uri))
	require.Equal(t, pl.seg(837).end(), pl.liveEdge(false))

	seg := pl.seg(837)
	require.True(t, seg.complete)
	require.Equal(t, 5, seg.p1-seg.p0)
	require.Equal(t, 1066670*time.Microsecond, seg.dur)
	require.Equal(t, "89709535-837.m4s", string(seg.uri))
}

func TestParseDeltaPlaylist(t *testing.T) {
	var pl mediaPlaylist
	require.NoError(t, pl.parse(readTestdata(t, "origin_delta.m3u8")))
	require.EqualValues(t, 826, pl.mediaSequence)
	require.EqualValues(t, 6, pl.skipped)
	require.EqualValues(t, 832, pl.segs[0].msn)
	require.Equal(t, mustTime(t, "2026-11-27T04:52:26.999Z"), pl.segs[0].start)
}

const plHead = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.2\n#EXT-X-MEDIA-SEQUENCE:10\n"

func TestParseTimeline(t *testing.T) {
	t0 := mustTime(t, "2026-01-02T03:04:05Z")
	for _, tc := range []struct {
		name     string
		body     string
		next     partPos
		starts   []int64 // of segments
		partEnds []int64
	}{
		{
			name: "one PDT carries forward to later segments and trailing parts",
			body: plHead + "#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05Z\n#EXTINF:1,\na.ts\n#EXTINF:0.5,\nb.ts\n" +
				"#EXT-X-PART:DURATION=0.2,URI=\"c0\"\n#EXT-X-PART:DURATION=0.2,URI=\"c1\"\n",
			next:     partPos{msn: 12, idx: 2},
			starts:   []int64{t0, t0 + 1e9, t0 + 15e8},
			partEnds: []int64{t0 + 17e8, t0 + 19e8},
		},
		{
			name:   "a PDT after the first segment dates the ones before it too",
			body:   plHead + "#EXTINF:1,\na.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T05:04:05+02:00\n#EXTINF:1,\nb.ts\n",
			next:   partPos{msn: 12},
			starts: []int64{t0 - 1e9, t0},
		},
		{
			name: "a complete last segment rolls over to part 0 of the next",
			body: plHead + "#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.000Z\n" +
				"#EXT-X-PART:DURATION=0.2,URI=\"a0\"\n#EXTINF:0.2,\na.ts\n",
			next:     partPos{msn: 11},
			starts:   []int64{t0},
			partEnds: []int64{t0 + 2e8},
		},
		{
			name: "PDT placed after a segment's first part still dates it",
			body: plHead + "#EXT-X-PART:DURATION=0.2,URI=\"a0\"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05Z\n" +
				"#EXT-X-PART:DURATION=0.2,URI=\"a1\"\n",
			next:     partPos{msn: 10, idx: 2},
			starts:   []int64{t0},
			partEnds: []int64{t0 + 2e8, t0 + 4e8},
		},
		{
			name: "empty playlist",
			body: plHead,
			next: partPos{msn: 10},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pl mediaPlaylist
			require.NoError(t, pl.parse([]byte(tc.body)))
			require.Equal(t, tc.next, pl.nextPart())
			var starts, ends []int64
			for _, s := range pl.segs {
				starts = append(starts, s.start)
			}
			for _, p := range pl.parts {
				ends = append(ends, p.end())
			}
			require.Equal(t, tc.starts, starts)
			require.Equal(t, tc.partEnds, ends)
		})
	}
}

func TestUntimedPlaylistTakesAnAnchor(t *testing.T) {
	var pl mediaPlaylist
	require.NoError(t, pl.parse([]byte(plHead+"#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n#EXT-X-ENDLIST\n")))
	require.False(t, pl.timed)
	require.True(t, pl.ended)
	require.False(t, pl.applyAnchor(9, 5e9))
	require.True(t, pl.applyAnchor(11, 5e9))
	require.EqualValues(t, 4e9, pl.segs[0].start)
	require.EqualValues(t, 6e9, pl.liveEdge(false))
}

func TestParseRejects(t *testing.T) {
	for name, body := range map[string]string{
		"no header":          "#EXT-X-TARGETDURATION:1\n",
		"empty":              "",
		"no target duration": "#EXTM3U\n#EXTINF:1,\na.ts\n",
		"part without URI":   plHead + "#EXT-X-PART:DURATION=0.2\n",
		"part without dur":   plHead + "#EXT-X-PART:URI=\"a\"\n",
		"URI without EXTINF": plHead + "a.ts\n",
		"dangling EXTINF":    plHead + "#EXTINF:1,\n",
		"bad PDT":            plHead + "#EXT-X-PROGRAM-DATE-TIME:yesterday\n",
		"bad EXTINF":         plHead + "#EXTINF:one,\na.ts\n",
		"bad sequence":       plHead + "#EXT-X-MEDIA-SEQUENCE:-3\n",
	} {
		t.Run(name, func(t *testing.T) {
			var pl mediaPlaylist
			err := pl.parse([]byte(body))
			var me *malformedError
			require.ErrorAs(t, err, &me)
			require.Equal(t, errKindMalformed, classify(err))
			require.Empty(t, pl.segs, "a refused playlist leaves nothing behind")
			require.Zero(t, pl.targetDuration)
		})
	}
	var pl mediaPlaylist
	require.ErrorIs(t, pl.parse([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n")), errMultivariant)
}

func TestVariantURI(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhigh.m3u8\n", "low.m3u8"},
		{"#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"x.m3u8\"\n" +
			"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"y\",DEFAULT=YES,URI=\"y.m3u8\"\n" +
			"#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n", "y.m3u8"},
		{"#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"main\",DEFAULT=YES\n#EXT-X-STREAM-INF:BANDWIDTH=1\naudio.m3u8\n", "audio.m3u8"},
	} {
		got, err := variantURI([]byte(tc.body))
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err := variantURI([]byte("#EXTM3U\n"))
	require.Error(t, err)
}

func TestParseDateTime(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-27T04:52:33.399Z":         "2026-11-27T04:52:33.399Z",
		"2026-11-27T04:52:33Z":             "2026-11-27T04:52:33Z",
		"2026-11-27T06:52:33.123456+02:00": "2026-11-27T04:52:33.123456Z",
		"2026-11-27T01:52:33.5-0300":       "2026-11-27T04:52:33.5Z",
	} {
		got, ok := parseDateTime([]byte(in))
		require.True(t, ok, in)
		require.Equal(t, mustTime(t, want), got, in)
	}
	for _, in := range []string{"2026-11-27T04:52:33", "2026-13-27T04:52:33Z", "2026-11-27T04:52:33.Z", "2026-11-27 04:52Z"} {
		_, ok := parseDateTime([]byte(in))
		require.False(t, ok, in)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	body := readTestdata(t, "origin_live.m3u8")
	var pl mediaPlaylist
	require.NoError(t, pl.parse(body)) // sizes the slices
	allocs := testing.AllocsPerRun(100, func() {
		pl.resume.ok = false // a full parse
		if err := pl.parse(body); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

// parsedView is what a parse leaves in a playlist, without the checkpoint,
// with empty slices as nil: parses that agree have equal views.
type parsedView struct {
	tags  playlistTags
	timed bool
	segs  []segment
	parts []part
}

func viewOf(pl *mediaPlaylist) parsedView {
	v := parsedView{tags: pl.playlistTags, timed: pl.timed}
	if len(pl.segs) > 0 {
		v.segs = pl.segs
	}
	if len(pl.parts) > 0 {
		v.parts = pl.parts
	}
	return v
}

// requireSameAsFullParse parses body with pl (which may resume from its
// checkpoint) and with a fresh playlist, and requires the same outcome.
func requireSameAsFullParse(t testing.TB, pl *mediaPlaylist, body []byte) {
	t.Helper()
	var fresh mediaPlaylist
	errFresh := fresh.parse(body)
	err := pl.parse(body)
	if errFresh != nil || err != nil {
		if (errFresh == nil) != (err == nil) || errFresh.Error() != err.Error() {
			t.Fatalf("resumed parse: %v, full parse: %v", err, errFresh)
		}
		return
	}
	if !reflect.DeepEqual(viewOf(pl), viewOf(&fresh)) {
		t.Fatalf("resumed parse differs from a full parse of\n%s", body)
	}
}

// bodyBuffer holds each body in the same storage, as a listener does.
type bodyBuffer struct{ b []byte }

func (bb *bodyBuffer) set(s string) []byte {
	if bb.b == nil {
		bb.b = make([]byte, 0, 64<<10)
	}
	bb.b = append(bb.b[:0], s...)
	return bb.b
}

// A live playlist growing part by part, as blocking reloads see it: every
// parse resumes from the last complete segment and must equal a full parse.
func TestParseResumesLikeFullParse(t *testing.T) {
	for _, name := range []string{"origin_live.m3u8", "origin_delta.m3u8"} {
		t.Run(name, func(t *testing.T) {
			lines := strings.SplitAfter(string(readTestdata(t, name)), "\n")
			var pl mediaPlaylist
			var buf bodyBuffer
			resumed := 0
			for n := 1; n <= len(lines); n++ {
				body := strings.Join(lines[:n], "")
				if pl.resume.ok && strings.HasPrefix(body, string(pl.resume.prefix)) {
					resumed++
				}
				requireSameAsFullParse(t, &pl, buf.set(body))
				// The same body with a preload hint after it, then again.
				hinted := body + "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"next.m4s\"\n"
				requireSameAsFullParse(t, &pl, buf.set(hinted))
				requireSameAsFullParse(t, &pl, buf.set(hinted))
			}
			require.Greater(t, resumed, len(lines)/2)
		})
	}
}

// A new body that differs before the checkpoint (the window moved, or the
// server restarted) is parsed from the start; so is one after an error, an
// untimed one, and one in other storage than the last.
func TestParseResumeOnlyOnSamePrefix(t *testing.T) {
	body := string(readTestdata(t, "origin_live.m3u8"))
	var pl mediaPlaylist
	var buf bodyBuffer
	require.NoError(t, pl.parse(buf.set(body)))
	require.True(t, pl.resume.ok)

	moved := strings.Replace(body, "MEDIA-SEQUENCE:826", "MEDIA-SEQUENCE:827", 1)
	requireSameAsFullParse(t, &pl, buf.set(moved))
	require.EqualValues(t, 827, pl.segs[0].msn)

	require.Error(t, pl.parse(buf.set(body+"#EXTINF:1,\n")))
	require.False(t, pl.resume.ok)
	requireSameAsFullParse(t, &pl, buf.set(body))

	// The buffer is overwritten (a read that failed) and the next body,
	// the same, comes in new storage: the kept URIs would be garbage.
	require.True(t, pl.resume.ok)
	copy(buf.b, strings.Repeat("x", len(buf.b)))
	requireSameAsFullParse(t, &pl, []byte(body))
	require.Equal(t, "89709535-826.m4s", string(pl.segs[0].uri))

	untimed := strings.ReplaceAll(body, "#EXT-X-PROGRAM-DATE-TIME:", "#X-NOT-PDT:")
	require.NoError(t, pl.parse(buf.set(untimed)))
	require.False(t, pl.timed)
	require.False(t, pl.resume.ok, "untimed playlists are always parsed in full")
}

func TestParseResumedDoesNotAllocate(t *testing.T) {
	body := readTestdata(t, "origin_live.m3u8")
	var pl mediaPlaylist
	require.NoError(t, pl.parse(body))
	allocs := testing.AllocsPerRun(100, func() {
		if err := pl.parse(body); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
	require.True(t, pl.resume.ok)
}

func BenchmarkParse(b *testing.B) {
	body := readTestdata(b, "origin_live.m3u8")
	var pl mediaPlaylist
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		pl.resume.ok = false // a full parse
		if err := pl.parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseResumed is a blocking reload: the body repeats the last
// one up to its newest parts.
func BenchmarkParseResumed(b *testing.B) {
	body := readTestdata(b, "origin_live.m3u8")
	var pl mediaPlaylist
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := pl.parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(readTestdata(f, "origin_live.m3u8"))
	f.Add(readTestdata(f, "origin_delta.m3u8"))
	f.Add([]byte(plHead + "#EXT-X-PART:DURATION=0.2,URI=\"a0\"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05Z\n"))
	f.Add([]byte(plHead + "#EXTINF:1,\na.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x\"\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var pl mediaPlaylist
		if pl.parse(body) != nil {
			return
		}
		for i, s := range pl.segs {
			if s.p0 < 0 || s.p1 < s.p0 || s.p1 > len(pl.parts) {
				t.Fatalf("segment %d has parts [%d:%d] of %d", i, s.p0, s.p1, len(pl.parts))
			}
			if !s.complete && i != len(pl.segs)-1 {
				t.Fatalf("incomplete segment %d is not the last", i)
			}
			if i > 0 && s.msn != pl.segs[i-1].msn+1 {
				t.Fatalf("segment numbers jump at %d", i)
			}
		}
		_ = pl.nextPart()
		_ = pl.liveEdge(true)
		_ = pl.has(partPos{msn: pl.lastMSN()})

		// Resuming from the checkpoint of an earlier body that shares a
		// prefix gives what a full parse gives.
		var resumed mediaPlaylist
		_ = resumed.parse(body[:len(body)*2/3])
		requireSameAsFullParse(t, &resumed, body)
		requireSameAsFullParse(t, &resumed, body)
	})
}
