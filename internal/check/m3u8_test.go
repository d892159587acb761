package check

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const sampleLL = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=0.64000,CAN-SKIP-UNTIL=6.00000
#EXT-X-PART-INF:PART-TARGET=0.21333
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:01:38.133Z
#EXTINF:0.98133,
seg100.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:01:39.114Z
#EXT-X-PART:DURATION=0.21333,URI="part101.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.21333,URI="part101.1.m4s"
#EXT-X-PART:DURATION=0.12800,URI="part101.2.m4s"
#EXTINF:0.55466,
seg101.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:01:40.095Z
#EXT-X-PART:DURATION=0.21333,URI="part102.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.21333,URI="part102.1.m4s",GAP=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part102.2.m4s"
#EXT-X-RENDITION-REPORT:URI="hi.m3u8",LAST-MSN=102,LAST-PART=1
`

const sampleMultivariant = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="main, stereo",CHANNELS="2",URI="lo.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="hi",CHANNELS="2",URI="hi.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=81510,CODECS="mp4a.40.2",AUDIO="aud"
lo.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=181510,CODECS="mp4a.40.2",AUDIO="aud"
hi.m3u8
`

func TestParseMedia(t *testing.T) {
	p, err := parseMedia([]byte(sampleLL))
	require.NoError(t, err)
	require.Equal(t, 9, p.version)
	require.Equal(t, 1, p.targetDuration)
	require.Equal(t, "CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=0.64000,CAN-SKIP-UNTIL=6.00000", p.serverControl)
	require.Equal(t, "0.64000", p.sc["PART-HOLD-BACK"])
	require.InDelta(t, 0.21333, p.partTarget, 1e-9)
	require.Equal(t, "init.mp4", p.mapURI)
	require.Len(t, p.segments, 2)
	require.Equal(t, uint64(101), p.segments[1].msn)
	require.Len(t, p.segments[1].parts, 3)
	require.True(t, p.segments[1].hasPDT)
	require.Len(t, p.tail, 2)
	require.True(t, p.tail[1].gap)
	require.True(t, p.tailPDT)
	require.Equal(t, &hint{typ: "PART", uri: "part102.2.m4s"}, p.hint)
	require.Equal(t, []report{{uri: "hi.m3u8", lastMSN: "102"}}, p.reports)
	require.Equal(t, position{102, 2}, p.next())
	require.Zero(t, p.pdtAfterPart)

	for _, tc := range []struct {
		q    position
		want bool
	}{
		{position{99, 0}, true},   // slid out of the window
		{position{101, 2}, true},  // listed
		{position{101, 3}, true},  // past the end of 101: part 0 of 102
		{position{101, 9}, true},  // likewise
		{position{102, 1}, true},  // in progress, listed
		{position{102, 2}, false}, // the hinted part
		{position{103, 0}, false},
	} {
		require.Equal(t, tc.want, p.has(tc.q), "%v", tc.q)
	}
}

func TestParseMediaDeltaAndMisplacedPDT(t *testing.T) {
	p, err := parseMedia([]byte(`#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXT-X-PART:DURATION=0.5,URI="p13.0.m4s"
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:01:40+00:00
#EXT-X-PART:DURATION=0.5,URI="p13.1.m4s"
#EXTINF:1.0,
s13.m4s
#EXT-X-ENDLIST
`))
	require.NoError(t, err)
	require.True(t, p.hasSkip)
	require.Equal(t, uint64(13), p.segments[0].msn)
	require.Equal(t, 1, p.pdtAfterPart)
	require.True(t, p.ended)
	require.True(t, p.has(position{99, 0}), "an ended playlist satisfies everything")
}

func TestParseMediaErrors(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"no header", "#EXT-X-TARGETDURATION:1\n"},
		{"multivariant", sampleMultivariant},
		{"uri without extinf", "#EXTM3U\nseg.m4s\n"},
		{"dangling extinf", "#EXTM3U\n#EXTINF:1,\n"},
		{"bad target", "#EXTM3U\n#EXT-X-TARGETDURATION:1.5\n"},
		{"part without uri", "#EXTM3U\n#EXT-X-PART:DURATION=1\n"},
		{"part-inf without target", "#EXTM3U\n#EXT-X-PART-INF:X=1\n"},
		{"bad pdt", "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMedia([]byte(tc.in))
			require.Error(t, err)
		})
	}
}

func TestParseMultivariant(t *testing.T) {
	b := []byte(sampleMultivariant)
	require.True(t, isMultivariant(b))
	require.False(t, isMultivariant([]byte(sampleLL)))
	m, err := parseMultivariant(b)
	require.NoError(t, err)
	require.Equal(t, []string{"lo.m3u8", "hi.m3u8"}, m.mediaURIs())
	require.Equal(t, "main, stereo", m.renditions[0].attrs["NAME"])
	require.Equal(t, "mp4a.40.2", m.variants[1].attrs["CODECS"])
}

func TestParseAttrs(t *testing.T) {
	require.Equal(t, map[string]string{
		"CODECS": "mp4a.40.2,opus", "BANDWIDTH": "1", "NAME": "a=b", "X": "",
	}, parseAttrs(`CODECS="mp4a.40.2,opus",BANDWIDTH=1,NAME="a=b",X=`))
	require.Equal(t, map[string]string{"URI": "unterminated"}, parseAttrs(`URI="unterminated`))
}

func TestParseCacheControl(t *testing.T) {
	cc := parseCacheControl(map[string][]string{"Cache-Control": {"public, max-age=2", "s-maxage=6"}})
	require.Equal(t, 6, cc.maxAge)
	require.True(t, cc.hasMaxAge)
	cc = parseCacheControl(map[string][]string{"Cache-Control": {"no-cache"}})
	require.Equal(t, "no-cache", cc.uncacheable())
}

func TestWithQuery(t *testing.T) {
	require.Equal(t, "http://h/a.m3u8?tok=1&_HLS_msn=3", withQuery("http://h/a.m3u8?tok=1&_HLS_msn=9", "_HLS_msn=3"))
	require.Equal(t, "http://h/a.m3u8", withQuery("http://h/a.m3u8?_HLS_skip=YES", ""))
}

// FuzzParseMedia checks that the parser survives anything a server may send
// and that what it accepts is consistent.
func FuzzParseMedia(f *testing.F) {
	f.Add([]byte(sampleLL))
	f.Add([]byte(sampleMultivariant))
	f.Add([]byte("#EXTM3U\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4294967295\n#EXTINF:1,\na\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseMedia(b)
		if err != nil {
			return
		}
		for i := 1; i < len(p.segments); i++ {
			if p.segments[i].msn != p.segments[i-1].msn+1 {
				t.Fatalf("segment numbers not consecutive: %d after %d", p.segments[i].msn, p.segments[i-1].msn)
			}
		}
		if !p.ended && p.has(p.next()) {
			t.Fatalf("a live playlist claims its next part %v", p.next())
		}
		p.allParts(func(q position, _ part, _ bool) {
			if !p.has(q) {
				t.Fatalf("listed part %v not satisfied", q)
			}
		})
	})
}

func FuzzParseMultivariant(f *testing.F) {
	f.Add([]byte(sampleMultivariant))
	f.Add([]byte(sampleLL))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMultivariant(b)
		if err != nil {
			return
		}
		if len(m.variants) == 0 {
			t.Fatal("accepted without variants")
		}
		_ = m.mediaURIs()
	})
}
