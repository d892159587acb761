package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/edge"
	"github.com/amphi-live/amphi/internal/demo"
	"github.com/amphi-live/amphi/origin"
	"github.com/amphi-live/amphi/segmenter"
)

// The servers under test: an origin, an amphi edge in front of it, and a
// static server for hls.js. Every one listens on 127.0.0.1:0 and stops when
// the test ends.

// hlsjsDir is where `npm ci --prefix internal/e2e` puts hls.js's builds,
// relative to this package (go test runs in the package directory).
var hlsjsDir = filepath.Join("node_modules", "hls.js", "dist")

// testLogger discards logs unless AMPHI_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("AMPHI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// serveHLSJS serves hls.js from node_modules and returns the URL of
// hls.min.js, for the player page's HLSJSURL. It is another origin than
// the edge's, as a CDN would be, so the page's CSP must allow it.
func serveHLSJS(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(http.FileServer(http.Dir(hlsjsDir)))
	t.Cleanup(ts.Close)
	return ts.URL + "/hls.min.js"
}

// serve runs serve on a fresh 127.0.0.1:0 listener until the test ends and
// returns the base URL ("http://127.0.0.1:PORT").
func serve(t *testing.T, what string, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s stopped with %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10s", what)
		}
	})
	return "http://" + ln.Addr().String()
}

// startOrigin runs an origin with the segmenter preset (open ingest, no
// RTMP); tweak, when not nil, adjusts the configuration first. It returns
// the server and its base URL.
func startOrigin(t *testing.T, preset, hlsjsURL string, tweak func(*origin.Config)) (*origin.Server, string) {
	t.Helper()
	cfg := origin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Segmenter.Preset = preset
	cfg.Ingest.Open = true
	cfg.RTMP.Listen = ""
	cfg.Player.HLSJSURL = hlsjsURL
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := origin.New(cfg, testLogger())
	require.NoError(t, err)
	return srv, serve(t, "origin", srv.Serve)
}

// startEdge runs an amphi edge in front of upstream and returns its base
// URL; its player page loads hls.js from hlsjsURL.
func startEdge(t *testing.T, upstream, hlsjsURL string) string {
	t.Helper()
	cfg := edge.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstreams = []string{upstream}
	cfg.Player.HLSJSURL = hlsjsURL
	e, err := edge.New(cfg, testLogger())
	require.NoError(t, err)
	return serve(t, "edge", e.Serve)
}

// demoBroadcast is the built-in looping clip published in-process.
type demoBroadcast struct {
	sess   *origin.Session
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startDemo publishes the demo clip as broadcast name until stop or the
// end of the test.
func startDemo(t *testing.T, srv *origin.Server, name string) *demoBroadcast {
	t.Helper()
	src := demo.Source{}
	asc, err := src.Config()
	require.NoError(t, err)
	sess, err := srv.Publish(name, &segmenter.AAC{Config: asc})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoBroadcast{sess: sess, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- src.Run(ctx, sess) }()
	t.Cleanup(func() {
		if err := d.stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("demo source: %v", err)
		}
		sess.End()
	})
	return d
}

// stop stops feeding the clip (the session stays open) and returns how
// the source ended.
func (d *demoBroadcast) stop() error {
	var err error
	d.once.Do(func() {
		d.cancel()
		err = <-d.done
	})
	return err
}

// ffmpegPublisher is an ffmpeg process pushing a 440 Hz sine as AAC in
// MPEG-TS over HTTP PUT, in real time, until killed.
type ffmpegPublisher struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// startPublisher starts ffmpeg publishing to ingestURL. It is killed when
// the test ends at the latest.
func startPublisher(t *testing.T, ingestURL string) *ffmpegPublisher {
	t.Helper()
	p := &ffmpegPublisher{out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-re",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:a", "aac", "-b:a", "64k", "-f", "mpegts", "-method", "PUT", ingestURL)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start(), "starting ffmpeg")
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if out := strings.TrimSpace(p.out.String()); out != "" && t.Failed() {
			t.Logf("ffmpeg output:\n%s", out)
		}
	})
	return p
}

// kill ends the publisher abruptly, as a crash or a dropped network would,
// and waits for the process to go.
func (p *ffmpegPublisher) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Errorf("ffmpeg did not exit within 5s of SIGKILL")
	}
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// tail returns at most the last n bytes written.
func (b *lockedBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// mediaPlaylistURL returns the URL of the media playlist that the
// multivariant playlist at base/live/name/index.m3u8 lists first.
func mediaPlaylistURL(t *testing.T, base, name string) string {
	t.Helper()
	body := get(t, base+"/live/"+name+"/index.m3u8")
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if uri, ok := strings.CutPrefix(line, "#EXT-X-MEDIA:"); ok {
			if _, rest, ok := strings.Cut(uri, `URI="`); ok {
				uri, _, _ = strings.Cut(rest, `"`)
				return base + "/live/" + name + "/" + uri
			}
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			return base + "/live/" + name + "/" + line
		}
	}
	require.FailNow(t, "no media playlist in the multivariant playlist", "%s", body)
	return ""
}

// get fetches url and returns its body, failing the test on anything but 200.
func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "GET %s", url)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err, "GET %s", url)
	require.Equal(t, http.StatusOK, res.StatusCode, "GET %s: %s", url, body)
	return string(body)
}

// ignoreCanceled returns nil for the error of something stopped on purpose.
func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// waitSegments polls the media playlist at url until it lists at least n
// complete segments, failing the test after limit.
func waitSegments(t *testing.T, url string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		body := get(t, url)
		if strings.Count(body, "#EXTINF:") >= n {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "the playlist never got its segments", "%d wanted within %v:\n%s", n, limit, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
