package check

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeLL is a small LL-HLS server over a synthetic timeline: 0.2 s parts,
// 5 parts a segment, TARGETDURATION 1, two audio renditions "a" and "b".
// It follows the rules by default; each knob breaks one rule family.
type fakeLL struct {
	// partTarget is the PART-TARGET written; 0: the real 0.2.
	partTarget float64
	// holdBackFactor is PART-HOLD-BACK / PART-TARGET; 0: 3.
	holdBackFactor float64
	// flapServerControl alternates PART-HOLD-BACK from segment to segment.
	flapServerControl bool
	noPDT             bool
	noHint            bool
	noReports         bool
	// holdLimit ends a hold that cannot be met; 0: 2s.
	holdLimit time.Duration
	// timeoutOK answers a timed-out hold with 200 and the playlist as it is.
	timeoutOK bool
	// playlistCC replaces the Cache-Control of playlist answers.
	playlistCC  string
	noCORS      bool
	noGzip      bool
	ignoreRange bool

	start time.Time
}

const (
	fakePartDur  = 200 * time.Millisecond
	fakeParts    = 5  // per segment
	fakeWindow   = 12 // segments listed
	fakeCSU      = 6.0
	fakeAdvLimit = 15 // ceil(3 / 0.2)
)

// serve serves f on a new httptest server; the timeline began 8 s ago so
// that the window already holds more than CAN-SKIP-UNTIL.
func (f *fakeLL) serve(t *testing.T) string {
	t.Helper()
	if f.holdLimit == 0 {
		f.holdLimit = 2 * time.Second
	}
	f.start = time.Now().Add(-8 * time.Second)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// parts is the number of complete parts at t.
func (f *fakeLL) parts(t time.Time) int { return int(t.Sub(f.start) / fakePartDur) }

func (f *fakeLL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !f.noCORS {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "Age, Content-Length, Content-Range")
	}
	if r.Method == http.MethodOptions {
		if f.noCORS {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Range")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	file := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case file == "index.m3u8":
		f.writePlaylist(w, r, []byte(fakeMultivariant), "public, max-age=1")
	case file == "a.m3u8" || file == "b.m3u8":
		f.serveMedia(w, r, strings.TrimSuffix(file, ".m3u8"))
	default:
		f.serveObject(w, r, file)
	}
}

const fakeMultivariant = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="a",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="a.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="b",AUTOSELECT=YES,CHANNELS="2",URI="b.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS="mp4a.40.2",AUDIO="aud"
a.m3u8
`

func (f *fakeLL) serveMedia(w http.ResponseWriter, r *http.Request, rend string) {
	q := r.URL.Query()
	msnS, partS, skip := q.Get("_HLS_msn"), q.Get("_HLS_part"), q.Get("_HLS_skip") == "YES"
	n := f.parts(time.Now())
	if partS != "" && msnS == "" {
		http.Error(w, "_HLS_part without _HLS_msn", http.StatusBadRequest)
		return
	}
	if msnS == "" {
		f.writePlaylist(w, r, f.render(rend, n, skip), "public, max-age=1")
		return
	}
	msn, err1 := strconv.Atoi(msnS)
	pt, err2 := 0, error(nil)
	if partS != "" {
		pt, err2 = strconv.Atoi(partS)
	}
	if err1 != nil || err2 != nil || msn < 0 || pt < 0 {
		http.Error(w, "bad directive", http.StatusBadRequest)
		return
	}
	last := n / fakeParts
	if n%fakeParts == 0 {
		last--
	}
	if msn > last+2 || (partS != "" && msn > last && pt >= fakeAdvLimit) {
		http.Error(w, "too far", http.StatusBadRequest)
		return
	}
	k := msn*fakeParts + pt // the global index of the part asked for
	if pt >= fakeParts {
		k = (msn + 1) * fakeParts
	}
	avail := f.start.Add(time.Duration(k+1) * fakePartDur)
	if wait := time.Until(avail); wait > f.holdLimit {
		select {
		case <-time.After(f.holdLimit):
		case <-r.Context().Done():
			return
		}
		if !f.timeoutOK {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "hold expired", http.StatusServiceUnavailable)
			return
		}
		f.writePlaylist(w, r, f.render(rend, n, skip), "public, max-age=6")
		return
	} else if wait > 0 {
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
	}
	f.writePlaylist(w, r, f.render(rend, max(k+1, f.parts(time.Now())), skip), "public, max-age=6")
}

// render writes rendition rend's playlist when n parts are complete.
func (f *fakeLL) render(rend string, n int, skip bool) []byte {
	pt := f.partTarget
	if pt == 0 {
		pt = fakePartDur.Seconds()
	}
	factor := f.holdBackFactor
	if factor == 0 {
		factor = 3
	}
	if f.flapServerControl && n/fakeParts%2 == 1 {
		factor++
	}
	done, tail := n/fakeParts, n%fakeParts
	first := max(0, done-fakeWindow)
	skipped := 0
	if skip {
		left := float64(done-first) + float64(tail)*fakePartDur.Seconds()
		for first+skipped < done && left-1 >= fakeCSU {
			skipped++
			left--
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n")
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.5f,CAN-SKIP-UNTIL=%.1f\n", factor*pt, fakeCSU)
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%.5f\n#EXT-X-MEDIA-SEQUENCE:%d\n", pt, first)
	fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s-init.mp4\"\n", rend)
	if skip {
		fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", skipped)
	}
	pdt := func(s int) {
		if !f.noPDT {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", f.start.Add(time.Duration(s)*time.Second).UTC().Format("2006-01-02T15:04:05.000Z"))
		}
	}
	parts := func(s, count int) {
		for i := range count {
			fmt.Fprintf(&b, "#EXT-X-PART:DURATION=0.20000,URI=\"%s-%d.%d.m4s\",INDEPENDENT=YES\n", rend, s, i)
		}
	}
	for s := first + skipped; s < done; s++ {
		pdt(s)
		if s >= done-3 {
			parts(s, fakeParts)
		}
		fmt.Fprintf(&b, "#EXTINF:1.00000,\n%s-%d.m4s\n", rend, s)
	}
	if tail > 0 {
		pdt(done)
		parts(done, tail)
	}
	if !f.noHint {
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s-%d.%d.m4s\"\n", rend, done, tail)
	}
	if !f.noReports {
		other := map[string]string{"a": "b", "b": "a"}[rend]
		if tail > 0 {
			fmt.Fprintf(&b, "#EXT-X-RENDITION-REPORT:URI=\"%s.m3u8\",LAST-MSN=%d,LAST-PART=%d\n", other, done, tail-1)
		} else {
			fmt.Fprintf(&b, "#EXT-X-RENDITION-REPORT:URI=\"%s.m3u8\",LAST-MSN=%d,LAST-PART=%d\n", other, done-1, fakeParts-1)
		}
	}
	return []byte(b.String())
}

func (f *fakeLL) writePlaylist(w http.ResponseWriter, r *http.Request, body []byte, cc string) {
	if f.playlistCC != "" {
		cc = f.playlistCC
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.apple.mpegurl")
	h.Set("Cache-Control", cc)
	h.Set("Vary", "Accept-Encoding")
	if !f.noGzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// serveObject serves init sections, parts (holding the hinted one) and
// segments.
func (f *fakeLL) serveObject(w http.ResponseWriter, r *http.Request, file string) {
	notFound := func() {
		w.Header().Set("Cache-Control", "public, max-age=1")
		http.Error(w, "not found", http.StatusNotFound)
	}
	rend, rest, ok := strings.Cut(file, "-")
	if !ok || (rend != "a" && rend != "b") {
		notFound()
		return
	}
	n := f.parts(time.Now())
	if rest != "init.mp4" {
		stem, ok := strings.CutSuffix(rest, ".m4s")
		if !ok {
			notFound()
			return
		}
		segS, partS, isPart := strings.Cut(stem, ".")
		s, err1 := strconv.Atoi(segS)
		p, err2 := strconv.Atoi(partS)
		switch {
		case err1 != nil || (isPart && (err2 != nil || p >= fakeParts)):
			notFound()
			return
		case !isPart && s >= n/fakeParts:
			notFound()
			return
		case isPart && s*fakeParts+p == n:
			// The hinted part: hold until it is complete.
			time.Sleep(time.Until(f.start.Add(time.Duration(n+1) * fakePartDur)))
		case isPart && s*fakeParts+p > n:
			notFound()
			return
		}
	}
	body := fakeObject(file)
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if f.ignoreRange {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// fakeObject is 1000 bytes derived from the file name.
func fakeObject(file string) []byte {
	sum := sha256.Sum256([]byte(file))
	return bytes.Repeat(sum[:], 32)[:1000]
}
