// Package testorigin runs a real amphi origin for other packages' tests: on
// 127.0.0.1:0, with a broadcast fed by synthetic AAC frames in real time.
package testorigin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/amphi-live/amphi/origin"
	"github.com/amphi-live/amphi/segmenter"
)

// Start runs an origin with preset and broadcast name fed by 180-byte AAC-LC
// frames at 48 kHz in real time (frame i carries byte(i) first), and
// returns its base URL ("http://127.0.0.1:PORT"). Everything stops when the
// test ends.
func Start(t testing.TB, preset, name string) string {
	t.Helper()
	cfg := origin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Ingest.Open = true
	cfg.RTMP.Listen = ""
	cfg.Segmenter.Preset = preset
	srv, err := origin.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := srv.Publish(name, &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 1,
	}})
	if err != nil {
		t.Fatal(err)
	}

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
