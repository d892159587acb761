package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// staticHLS serves a plain (non-LL) live playlist of three 1 s segments
// ending now, with the given HOLD-BACK, and segments answering status.
func staticHLS(t *testing.T, holdBack float64, status int) string {
	t.Helper()
	start := time.Now().Add(-3 * time.Second).UTC()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:HOLD-BACK=%.1f\n#EXT-X-MEDIA-SEQUENCE:0\n", holdBack)
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", start.Format("2006-01-02T15:04:05.000Z"))
		for i := range 3 {
			fmt.Fprintf(&b, "#EXTINF:1.0,\nseg%d.ts\n", i)
		}
		w.Write([]byte(b.String()))
	})
	mux.HandleFunc("GET /{seg}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		w.Write(make([]byte, 100))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/live.m3u8"
}

func runLoadtestCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newLoadtestCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestLoadtestBadFlagsAreUsageErrors(t *testing.T) {
	url := "http://127.0.0.1:1/live.m3u8"
	for _, args := range [][]string{
		{},
		{url, url},
		{"ftp://x/a.m3u8"},
		{url, "--listeners", "0"},
		{url, "--listeners", "many"},
		{url, "--duration", "-1s"},
		{url, "--duration", "10s", "--ramp", "10s"},
		{url, "--mix", "ll=1,dash=1"},
		{url, "--mix", "ll"},
		{url, "--source-ips", "127.0.0.9-127.0.0.1"},
		{url, "--max-errors", "few"},
		{url, "--timeout", "-1s"},
		{url, "--procs", "-1"},
		{url, "--no-such-flag"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, err := runLoadtestCmd(t, args...)
			require.Error(t, err)
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 2, ee.code, "%v", err)
		})
	}
}

func TestLoadtestFlagsParse(t *testing.T) {
	o := &loadtestOptions{}
	cmd := loadtestCommand(o)
	require.NoError(t, cmd.ParseFlags([]string{"-n", "42", "-d", "9s", "--ramp", "2s", "--mix", "hint=1",
		"--source-ips", "127.0.0.1-127.0.0.4", "--timeout", "3s", "--max-errors", "7", "--max-stall-ratio", "0.5"}))
	cfg, err := o.config("http://127.0.0.1:8080/live/demo/index.m3u8")
	require.NoError(t, err)
	require.Equal(t, 42, cfg.Listeners)
	require.Equal(t, 9*time.Second, cfg.Duration)
	require.Equal(t, 2*time.Second, cfg.Ramp)
	require.Equal(t, 3*time.Second, cfg.Timeout)
	require.Len(t, cfg.SourceIPs, 4)
	require.Equal(t, 1.0, cfg.Mix[1])
	require.EqualValues(t, 7, o.maxErrors)
	require.Equal(t, 0.5, o.maxStallRatio)
}

func TestLoadtestWritesJSON(t *testing.T) {
	t.Parallel()
	url := staticHLS(t, 3, http.StatusOK)
	file := filepath.Join(t.TempDir(), "out.json")
	stdout, stderr, err := runLoadtestCmd(t, url, "-n", "4", "-d", "1500ms", "--mix", "legacy=1", "--json", file, "--max-errors", "0")
	require.NoError(t, err, stderr)
	require.Contains(t, stdout, "segment latency")
	require.Contains(t, stdout, "thresholds: passed")
	require.Contains(t, stderr, "loadtest:", "plain progress lines when stdout is not a terminal")

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var rep struct {
		Listeners  int `json:"listeners"`
		Behaviours map[string]struct {
			Playing int `json:"playing"`
		} `json:"behaviours"`
		Total struct {
			ErrorsTotal    int                `json:"errors_total"`
			RequestsPerSec map[string]float64 `json:"requests_per_s"`
			SegmentLatency *struct {
				P99 float64 `json:"p99_ms"`
			} `json:"segment_latency"`
		} `json:"total"`
		Generator struct {
			CPU float64 `json:"cpu_s"`
		} `json:"generator"`
		Thresholds struct {
			Passed bool `json:"passed"`
		} `json:"thresholds"`
	}
	require.NoError(t, json.Unmarshal(data, &rep), string(data))
	require.Equal(t, 4, rep.Listeners)
	require.Equal(t, 4, rep.Behaviours["legacy"].Playing)
	require.Zero(t, rep.Total.ErrorsTotal)
	require.Positive(t, rep.Total.RequestsPerSec["segment"])
	require.Positive(t, rep.Generator.CPU)
	require.True(t, rep.Thresholds.Passed)
}

// Not parallel: the CPU profiler is one per process.
func TestLoadtestCPUProfile(t *testing.T) {
	url := staticHLS(t, 3, http.StatusOK)
	file := filepath.Join(t.TempDir(), "cpu.pprof")
	_, stderr, err := runLoadtestCmd(t, url, "-n", "2", "-d", "1s", "--mix", "legacy=1", "--cpuprofile", file, "--procs", "1")
	require.NoError(t, err, stderr)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Positive(t, st.Size())
}

func TestLoadtestThresholdsSetTheExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		holdBack float64
		status   int
		args     []string
		fail     bool
	}{
		{"errors over the limit", 3, http.StatusNotFound, []string{"--max-errors", "0"}, true},
		{"errors within the limit", 3, http.StatusNotFound, []string{"--max-errors", "100000"}, false},
		{"stalls over the limit", 0.5, http.StatusOK, []string{"--max-stall-ratio", "0.05"}, true},
		{"stalls not checked", 0.5, http.StatusOK, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := staticHLS(t, tc.holdBack, tc.status)
			args := append([]string{url, "-n", "3", "-d", "1500ms", "--mix", "legacy=1"}, tc.args...)
			stdout, _, err := runLoadtestCmd(t, args...)
			if !tc.fail {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 1, ee.code)
			require.Contains(t, err.Error(), "thresholds exceeded")
			require.Contains(t, stdout, "thresholds: FAILED")
		})
	}
}

func TestLoadtestUnreachableTargetFails(t *testing.T) {
	_, _, err := runLoadtestCmd(t, "http://127.0.0.1:1/live.m3u8", "-n", "1", "-d", "1s")
	require.Error(t, err)
	var ee *exitError
	require.False(t, errors.As(err, &ee) && ee.code == 2, "a run failure is not a usage error")
}
