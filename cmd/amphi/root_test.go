package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/origin"
)

func TestRootHasSubcommands(t *testing.T) {
	root := newRootCmd()
	var names []string
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	for _, want := range []string{"origin", "demo", "broadcast", "version"} {
		require.Contains(t, names, want)
	}
	require.True(t, root.SilenceUsage)
}

func TestVersion(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	require.NoError(t, root.Execute())
	require.True(t, strings.HasPrefix(out.String(), "amphi "), out.String())
}

func TestBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"origin", "--preset", "fast"},
		{"origin", "--listen", "nope"},
		{"origin", "--part-duration", "5ms"},
		{"demo", "--log-level", "loud"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(args)
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			err := root.Execute()
			require.Error(t, err)
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 2, ee.code)
		})
	}
}

// syncBuffer lets the test read what runDemo prints while it runs.
type syncBuffer struct {
	ch chan string
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		b.ch <- sc.Text()
	}
	return len(p), nil
}

func TestDemoServesItsBroadcast(t *testing.T) {
	cfg := origin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Segmenter.Preset = "low"
	cfg.LogLevel = "warn"
	out := &syncBuffer{ch: make(chan string, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, cfg, out) }()

	var url string
	select {
	case line := <-out.ch:
		url = regexp.MustCompile(`http://\S+/index\.m3u8`).FindString(line)
	case <-time.After(10 * time.Second):
		t.Fatal("demo printed no playback URL")
	}
	require.NotEmpty(t, url)

	var code int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := http.Get(url)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		code = res.StatusCode
		if code == http.StatusOK {
			require.Contains(t, string(body), `CODECS="mp4a.40.2"`)
			break
		}
	}
	require.Equal(t, http.StatusOK, code)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop")
	}
}
