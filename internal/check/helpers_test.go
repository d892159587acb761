package check

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/edge"
	"github.com/amphi-live/amphi/origin"
	"github.com/amphi-live/amphi/segmenter"
)

// startOrigin runs a real amphi origin (low preset: 0.21333 s parts, 1 s
// target duration) on 127.0.0.1:0 with broadcast "live" fed by synthetic
// 180-byte AAC frames in real time, and returns its base URL.
func startOrigin(t *testing.T) string {
	t.Helper()
	cfg := origin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Ingest.Open = true
	cfg.RTMP.Listen = ""
	cfg.Segmenter.Preset = "low"
	srv, err := origin.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	sess, err := srv.Publish("live", &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1, ChannelConfig: 1,
	}})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		defer sess.End()
		const frame = time.Second * 1024 / 48000
		au := make([]byte, 180)
		timer := time.NewTimer(0)
		defer timer.Stop()
		start := time.Now()
		for i := 0; ; i++ {
			pts := time.Duration(i) * frame
			timer.Reset(time.Until(start.Add(pts)))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			au[0] = byte(i)
			if err := sess.WriteAAC(pts, [][]byte{au}); err != nil {
				t.Errorf("WriteAAC: %v", err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-fed
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("origin stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("origin did not stop within 10s")
		}
	})
	return "http://" + ln.Addr().String()
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
