package origin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startTestOrigin runs an origin on 127.0.0.1:0 with the given preset and
// returns it with its base URL ("http://127.0.0.1:PORT"). It stops when the
// test ends.
func startTestOrigin(t *testing.T, preset string) (*Server, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Segmenter.Preset = preset
	cfg.Ingest.ReadTimeout = Duration(5 * time.Second)
	// The live-path tests publish without stream keys; the lifecycle tests
	// (lifecycle_test.go) run with keys and the admin API.
	cfg.Ingest.Open = true
	cfg.RTMP.Listen = ""
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("AMPHI_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg, logger)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("origin stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("origin did not stop within 10s")
		}
	})
	return srv, "http://" + ln.Addr().String()
}
