package check

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReportFormats(t *testing.T) {
	rep := newReport("http://h/live/x/index.m3u8", []Result{
		{ID: "part-target", Status: Pass, Evidence: "longest part 0.21333 ≤ PART-TARGET 0.21333 over 57 parts"},
		{ID: "server-control-stable", Status: Fail, Evidence: "changed"},
		{ID: "age", Status: Skip, Evidence: "no cache detected"},
	})
	require.Equal(t, 1, rep.Passed)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 1, rep.Skipped)

	var text bytes.Buffer
	require.NoError(t, rep.WriteText(&text))
	require.Equal(t, ""+
		"PASS part-target            longest part 0.21333 ≤ PART-TARGET 0.21333 over 57 parts\n"+
		"FAIL server-control-stable  changed\n"+
		"SKIP age                    no cache detected\n"+
		"3 rules: 1 passed, 1 failed, 1 skipped\n", text.String())

	var js bytes.Buffer
	require.NoError(t, rep.WriteJSON(&js))
	var back struct {
		URL   string `json:"url"`
		Rules []struct {
			ID, Status, Evidence string
		} `json:"rules"`
		Passed int `json:"passed"`
		Failed int `json:"failed"`
	}
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	require.Equal(t, "http://h/live/x/index.m3u8", back.URL)
	require.Len(t, back.Rules, 3)
	require.Equal(t, "FAIL", back.Rules[1].Status)
	require.Equal(t, 1, back.Failed)
}

func TestRunRefusesBadInput(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/missing.m3u8", http.NotFound)
	mux.HandleFunc("/text.m3u8", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hello")) })
	mux.HandleFunc("/elsewhere.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"opus\"\nhttp://cdn.invalid/a.m3u8\n"))
	})
	mux.HandleFunc("/redirect.m3u8", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://cdn.invalid/a.m3u8", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ url, err string }{
		{"ftp://h/a.m3u8", "want an http:// or https:// playlist URL"},
		{srv.URL + "/missing.m3u8", "answered 404"},
		{srv.URL + "/text.m3u8", "no #EXTM3U header"},
		{srv.URL + "/elsewhere.m3u8", "lists no media playlist on its own host"},
		{srv.URL + "/redirect.m3u8", "refusing to contact a host other than the URL's"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := Run(context.Background(), Config{URL: tc.url, Duration: time.Second})
			require.ErrorContains(t, err, tc.err)
		})
	}
	_, err := Run(context.Background(), Config{URL: srv.URL + "/a.m3u8", Duration: -time.Second})
	require.ErrorContains(t, err, "Duration")
}

// TestNonLowLatencyPlaylist follows a plain live playlist: the LL rules
// skip, the others are judged.
func TestNonLowLatencyPlaylist(t *testing.T) {
	t.Parallel()
	var reloads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if strings.HasPrefix(r.URL.Path, "/amphi-check-") {
			w.Header().Set("Cache-Control", "max-age=2")
			http.NotFound(w, r)
			return
		}
		if !strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Header().Set("Cache-Control", "max-age=86400")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(make([]byte, 500)))
			return
		}
		n := reloads.Add(1)
		w.Header().Set("Cache-Control", "max-age=1")
		var b strings.Builder
		b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:" + itoa(int(n)) + "\n")
		b.WriteString("#EXT-X-PROGRAM-DATE-TIME:2025-03-01T12:00:00Z\n")
		for i := range 3 {
			b.WriteString("#EXTINF:2.0,\ns" + itoa(int(n)+i) + ".ts\n")
		}
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	rep, err := Run(context.Background(), Config{URL: srv.URL + "/live.m3u8", Duration: 1500 * time.Millisecond})
	require.NoError(t, err)
	want := map[string]Status{
		"part-target": Skip, "part-hold-back": Skip, "server-control-stable": Pass, "target-duration": Pass,
		"pdt": Pass, "preload-hint": Skip, "rendition-reports": Skip, "blocking": Skip, "delta": Skip,
		"cache-control": Pass, "age": Skip, "gzip": Fail, "cors": Pass, "head-range": Pass, "codecs": Skip,
	}
	for _, res := range rep.Rules {
		require.Equal(t, want[res.ID], res.Status, "%s: %s", res.ID, res.Evidence)
	}
	require.Greater(t, reloads.Load(), int64(2))
}

func itoa(n int) string { return strconv.Itoa(n) }
