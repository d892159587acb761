package check

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/edge"
	"github.com/amphi-live/amphi/internal/testorigin"
)

// startOrigin runs a real amphi origin (low preset: 0.21333 s parts, 1 s
// target duration) on 127.0.0.1:0 with broadcast "live" fed by synthetic
// 180-byte AAC frames in real time, and returns its base URL.
func startOrigin(t *testing.T) string {
	t.Helper()
	return testorigin.Start(t, "low", "live")
}

// startEdge runs a real amphi edge on 127.0.0.1:0 in front of upstream and
// returns its base URL.
func startEdge(t *testing.T, upstream string) string {
	t.Helper()
	cfg := edge.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstreams = []string{upstream}
	e, err := edge.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("edge stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("edge did not stop within 10s")
		}
	})
	return "http://" + ln.Addr().String()
}
