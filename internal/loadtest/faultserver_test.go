package loadtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// faultServer is a small LL-HLS server whose timeline is pure arithmetic on
// the wall clock, with faults switched on by its fields:
//
//	part k (k = msn*partsPerSeg + i) holds audio [start+k*part, start+(k+1)*part)
//	and becomes available at start+(k+1)*part+delay
//
// It serves /index.m3u8 (multivariant), /media.m3u8 (with blocking reload,
// delta updates and a preload hint whose request is held), parts, segments
// and init. Set the fault fields before start.
type faultServer struct {
	part        time.Duration // part duration; default 200ms
	partsPerSeg int           // default 5
	window      int           // segments listed; default 12
	history     time.Duration // media before the server started; default 6s
	holdTimeout time.Duration // default 3 × target duration

	delay          time.Duration // parts become available this late
	dropEvery      int           // part k with k%dropEvery == dropEvery-1 answers 404
	blockingStatus int           // blocking playlist requests answer this status
	answerEarly    bool          // blocking playlist requests are answered at once
	malformedEvery int           // every n-th blocking playlist answer is garbage
	stallAfter     time.Duration // no part ends later than this after start (0: never)
	endAfter       time.Duration // like stallAfter, then the playlist ends (EXT-X-ENDLIST)

	start     time.Time
	url       string
	blockings atomic.Int64
}

func (f *faultServer) serve(t *testing.T) *faultServer {
	t.Helper()
	if f.part == 0 {
		f.part = 200 * time.Millisecond
	}
	if f.partsPerSeg == 0 {
		f.partsPerSeg = 5
	}
	if f.window == 0 {
		f.window = 12
	}
	if f.history == 0 {
		f.history = 6 * time.Second
	}
	if f.holdTimeout == 0 {
		f.holdTimeout = 3 * f.targetDuration()
	}
	// Millisecond start, as PROGRAM-DATE-TIME has it.
	f.start = time.Now().Add(-f.history).Truncate(time.Millisecond)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /index.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		fmt.Fprint(w, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\nmedia.m3u8\n")
	})
	mux.HandleFunc("GET /media.m3u8", f.playlist)
	mux.HandleFunc("GET /init.mp4", func(w http.ResponseWriter, _ *http.Request) { w.Write(make([]byte, 600)) })
	mux.HandleFunc("GET /{name}", f.media)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *faultServer) targetDuration() time.Duration {
	return (f.part * time.Duration(f.partsPerSeg)).Round(time.Second)
}

// available returns when part k can be served, and false if never (stall).
func (f *faultServer) available(k int64) (time.Time, bool) {
	end := time.Duration(k+1) * f.part
	if stop := f.stop(); stop > 0 && end > f.history+stop {
		return time.Time{}, false
	}
	return f.start.Add(end + f.delay), true
}

// published is the number of parts available at now.
func (f *faultServer) published(now time.Time) int64 {
	n := int64(now.Sub(f.start)-f.delay) / int64(f.part)
	if stop := f.stop(); stop > 0 {
		n = min(n, int64((f.history+stop)/f.part))
	}
	return n
}

func (f *faultServer) stop() time.Duration { return max(f.stallAfter, f.endAfter) }

// ended reports whether the broadcast is over at now.
func (f *faultServer) ended(now time.Time) bool {
	return f.endAfter > 0 && now.Sub(f.start) >= f.history+f.endAfter
}

func (f *faultServer) playlist(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pps := int64(f.partsPerSeg)
	if msnStr := q.Get("_HLS_msn"); msnStr != "" {
		n := f.blockings.Add(1)
		if f.blockingStatus != 0 {
			http.Error(w, "fault", f.blockingStatus)
			return
		}
		msn, err1 := strconv.ParseInt(msnStr, 10, 64)
		part, err2 := int64(0), error(nil)
		if p := q.Get("_HLS_part"); p != "" {
			part, err2 = strconv.ParseInt(p, 10, 64)
		}
		if err1 != nil || err2 != nil || part > pps {
			http.Error(w, "bad directive", http.StatusBadRequest)
			return
		}
		if f.answerEarly {
			w.Write(f.render(f.published(time.Now()), false, false))
			return
		}
		k := msn*pps + part // part == pps is part 0 of the next segment
		if k > f.published(time.Now())+2*pps {
			http.Error(w, "too far ahead", http.StatusBadRequest)
			return
		}
		at, ok := f.available(k)
		if !ok && f.endAfter > 0 {
			// Held until the end, then answered with the final playlist.
			ok, at = true, f.start.Add(f.history+f.endAfter)
		}
		wait := time.Until(at)
		if !ok || wait > f.holdTimeout {
			select {
			case <-time.After(f.holdTimeout):
				http.Error(w, "hold timed out", http.StatusServiceUnavailable)
			case <-r.Context().Done():
			}
			return
		}
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
		}
		if f.malformedEvery > 0 && n%int64(f.malformedEvery) == 0 {
			w.Write([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART:URI=\"nodur.m4s\"\n"))
			return
		}
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	now := time.Now()
	w.Write(f.render(f.published(now), q.Get("_HLS_skip") == "YES", f.ended(now)))
}

// render writes the playlist with n parts published.
func (f *faultServer) render(n int64, skip, ended bool) []byte {
	pps := int64(f.partsPerSeg)
	segSecs := (f.part * time.Duration(pps)).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:%d\n", int(f.targetDuration().Seconds()))
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f,HOLD-BACK=%.3f,CAN-SKIP-UNTIL=%.3f\n",
		3*f.part.Seconds(), 3*f.targetDuration().Seconds(), 6*f.targetDuration().Seconds())
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%.3f\n", f.part.Seconds())
	lastMSN := n / pps // the segment the next part belongs to
	first := max(0, lastMSN-int64(f.window))
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"init.mp4\"\n", first)
	from := first
	if skip {
		// Skip what is older than CAN-SKIP-UNTIL (6 target durations).
		keep := int64(6*f.targetDuration()/(f.part*time.Duration(pps))) + 1
		if s := lastMSN - keep; s > first {
			fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", s-first)
			from = s
		}
	}
	for msn := from; msn <= lastMSN; msn++ {
		k0 := msn * pps
		if k0 >= n && msn != lastMSN {
			break
		}
		if k0 < n {
			pdt := f.start.Add(time.Duration(k0) * f.part).UTC().Format("2006-01-02T15:04:05.000Z")
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt)
		}
		for i := int64(0); i < pps && k0+i < n; i++ {
			fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%.3f,URI=\"p%d.%d.m4s\",INDEPENDENT=YES\n", f.part.Seconds(), msn, i)
		}
		if k0+pps <= n {
			fmt.Fprintf(&b, "#EXTINF:%.3f,\ns%d.m4s\n", segSecs, msn)
		}
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	} else {
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p%d.%d.m4s\"\n", n/pps, n%pps)
	}
	return []byte(b.String())
}

// media serves p{msn}.{i}.m4s and s{msn}.m4s.
func (f *faultServer) media(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	pps := int64(f.partsPerSeg)
	var msn, i int64
	if _, err := fmt.Sscanf(name, "p%d.%d.m4s", &msn, &i); err == nil && i < pps {
		k := msn*pps + i
		if f.dropEvery > 0 && k%int64(f.dropEvery) == int64(f.dropEvery-1) {
			http.NotFound(w, r)
			return
		}
		now := time.Now()
		n := f.published(now)
		switch {
		case k < n:
		case k == n: // the hinted part: hold until it is complete
			at, ok := f.available(k)
			if !ok {
				http.NotFound(w, r)
				return
			}
			select {
			case <-time.After(time.Until(at)):
			case <-r.Context().Done():
				return
			}
		default:
			http.NotFound(w, r)
			return
		}
		w.Write(make([]byte, 200))
		return
	}
	if _, err := fmt.Sscanf(name, "s%d.m4s", &msn); err == nil {
		if (msn+1)*pps > f.published(time.Now()) {
			http.NotFound(w, r)
			return
		}
		w.Write(make([]byte, 200*pps))
		return
	}
	http.NotFound(w, r)
}
