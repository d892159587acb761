package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/check"
)

// checkHLS serves a plain (non-LL) live playlist of three 2 s segments that
// follows every rule that applies to it; withGzip false breaks the gzip rule.
func checkHLS(t *testing.T, withGzip bool) string {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		switch {
		case r.Method == http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/live.m3u8":
			n := int(time.Since(start) / (2 * time.Second))
			var b strings.Builder
			fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n", n)
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", start.Add(time.Duration(n)*2*time.Second).UTC().Format(time.RFC3339Nano))
			for i := n; i < n+3; i++ {
				fmt.Fprintf(&b, "#EXTINF:2.0,\nseg%d.ts\n", i)
			}
			body := []byte(b.String())
			h.Set("Cache-Control", "max-age=1")
			h.Set("Vary", "Accept-Encoding")
			if withGzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write(body)
				zw.Close()
				body = buf.Bytes()
				h.Set("Content-Encoding", "gzip")
			}
			w.Write(body)
		case strings.HasPrefix(r.URL.Path, "/seg"):
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bytes.Repeat([]byte("amphi"), 100)))
		default:
			h.Set("Cache-Control", "max-age=2")
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/live.m3u8"
}

func runCheckCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newCheckCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// checkExitCode is the exit status main would give err.
func checkExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func TestCheckBadFlagsAreUsageErrors(t *testing.T) {
	url := "http://127.0.0.1:1/live.m3u8"
	for _, args := range [][]string{
		{},
		{url, url},
		{"ftp://x/a.m3u8"},
		{"live.m3u8"},
		{url, "--duration", "0s"},
		{url, "--duration", "soon"},
		{url, "--timeout", "-1s"},
		{url, "--slack", "-1s"},
		{url, "--strict-503=maybe"},
		{url, "--no-such-flag"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := runCheckCmd(t, args...)
			require.Error(t, err)
			require.Equal(t, 2, checkExitCode(err), "%v", err)
		})
	}
}

func TestCheckFlagsBuildTheConfig(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		strict check.Switch
	}{
		{nil, check.Auto},
		{[]string{"--strict-503"}, check.On},
		{[]string{"--strict-503=false"}, check.Off},
	} {
		o := &checkOptions{}
		cmd := checkCommand(o)
		require.NoError(t, cmd.ParseFlags(append([]string{"-d", "4s", "--expect-cache", "--slack", "250ms"}, tc.args...)))
		cfg, err := o.config(cmd, "https://cdn.example/live/x/index.m3u8")
		require.NoError(t, err)
		require.Equal(t, check.Config{
			URL: "https://cdn.example/live/x/index.m3u8", Duration: 4 * time.Second, Strict503: tc.strict,
			ExpectCache: true, Timeout: 5 * time.Second, Slack: 250 * time.Millisecond,
		}, cfg)
	}
}

func TestCheckExitCodes(t *testing.T) {
	t.Parallel()
	t.Run("all rules pass or skip", func(t *testing.T) {
		t.Parallel()
		out, errOut, err := runCheckCmd(t, checkHLS(t, true), "--duration", "1500ms")
		require.NoError(t, err, out)
		require.Contains(t, errOut, "following")
		require.Contains(t, out, "PASS target-duration")
		require.Contains(t, out, "SKIP blocking")
		require.Contains(t, out, "15 rules: ")
		require.Contains(t, out, " 0 failed")
	})
	t.Run("a failed rule exits 1", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCheckCmd(t, checkHLS(t, false), "--duration", "1500ms")
		require.Equal(t, 1, checkExitCode(err), "%v", err)
		require.ErrorContains(t, err, "1 of 15 rules failed")
		require.Contains(t, out, "FAIL gzip")
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		url := checkHLS(t, false)
		out, _, err := runCheckCmd(t, url, "--duration", "1500ms", "--json")
		require.Equal(t, 1, checkExitCode(err))
		var rep struct {
			URL   string `json:"url"`
			Rules []struct {
				ID       string `json:"id"`
				Status   string `json:"status"`
				Evidence string `json:"evidence"`
			} `json:"rules"`
			Passed int `json:"passed"`
			Failed int `json:"failed"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		require.Equal(t, url, rep.URL)
		require.Len(t, rep.Rules, len(check.Rules))
		require.Equal(t, 1, rep.Failed)
		require.Positive(t, rep.Passed)
	})
	t.Run("expect-cache turns the missing Age into a failure", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCheckCmd(t, checkHLS(t, true), "--duration", "1500ms", "--expect-cache")
		require.Equal(t, 1, checkExitCode(err))
		require.Contains(t, out, "FAIL age")
	})
	t.Run("an unreachable URL exits 1", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, _, err := runCheckCmd(t, srv.URL+"/live.m3u8", "--duration", "1s", "--timeout", "1s")
		require.Equal(t, 1, checkExitCode(err))
	})
}
