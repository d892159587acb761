// Package bench holds amphi's benchmarks. Timings are only compared within
// one run: these machines are shared and absolute figures drift.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/amphi-live/amphi/edge"
	"github.com/amphi-live/amphi/origin"
	"github.com/amphi-live/amphi/segmenter"
)

// BenchmarkHoldWake measures the delay between a part's completion in the
// segmenter and its arrival, as a playlist response, at listeners that held
// a blocking request (_HLS_msn/_HLS_part) for it, over real TCP on loopback.
// One iteration is a 10 s broadcast with the low preset; run it with
//
//	go test -run '^$' -bench HoldWake -benchtime 1x ./bench
//
// The tier=edge cases put an amphi edge between the listeners and the
// origin, in the same run, so the two columns compare.
func BenchmarkHoldWake(b *testing.B) {
	for _, tier := range []string{"origin", "edge"} {
		for _, listeners := range []int{1, 100, 500} {
			b.Run(fmt.Sprintf("tier=%s/listeners=%d", tier, listeners), func(b *testing.B) {
				benchHoldWake(b, tier == "edge", listeners)
			})
		}
	}
}

func benchHoldWake(b *testing.B, viaEdge bool, listeners int) {
	var all []time.Duration
	for range b.N {
		all = append(all, holdWakeRun(b, viaEdge, listeners, 10*time.Second)...)
	}
	if len(all) == 0 {
		b.Fatal("no part arrived")
	}
	slices.Sort(all)
	q := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Microseconds())
	}
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(len(all)), "deliveries")
}

func holdWakeRun(b *testing.B, viaEdge bool, listeners int, d time.Duration) []time.Duration {
	cfg := origin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = b.TempDir()
	cfg.Segmenter.Preset = "low"
	srv, err := origin.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	sess, err := srv.Publish("bench", &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 1,
	}})
	if err != nil {
		b.Fatal(err)
	}
	seg := sess.Segmenter()
	framesPerPart := int(math.Round(seg.PartTarget().Seconds() * 48000 / 1024))
	pps := seg.PartsPerSegment()

	// completed[p] is when the write that completes the p-th part began.
	var mu sync.Mutex
	completed := map[int]time.Time{}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		frame := time.Second * 1024 / 48000
		start := time.Now()
		au := make([]byte, 180)
		for k := 0; time.Since(start) < d; k++ {
			time.Sleep(time.Until(start.Add(time.Duration(k) * frame)))
			if (k+1)%framesPerPart == 0 {
				mu.Lock()
				completed[(k+1)/framesPerPart-1] = time.Now()
				mu.Unlock()
			}
			if sess.WriteAAC(0, [][]byte{au}) != nil {
				return
			}
		}
		sess.End()
	}()

	url := "http://" + ln.Addr().String() + "/live/bench/audio.m3u8"
	if viaEdge {
		url = startEdge(b, ctx, "http://"+ln.Addr().String()) + "/live/bench/audio.m3u8"
	}
	var lmu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	// Listeners start with the second part of the third segment: the origin
	// serves a new broadcast's playlist from its second segment on, and a
	// hold that began before then would measure that wait, not a wake-up.
	firstPart := 2*pps + 1
	for range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			for p := firstPart; ; p++ {
				res, err := c.Get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", url, p/pps, p%pps))
				if err != nil {
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				arrived := time.Now()
				if res.StatusCode != http.StatusOK || bytes.HasSuffix(body, []byte("#EXT-X-ENDLIST\n")) {
					return
				}
				mu.Lock()
				done, ok := completed[p]
				mu.Unlock()
				if ok {
					lmu.Lock()
					lat = append(lat, arrived.Sub(done))
					lmu.Unlock()
				}
			}
		}()
	}
	<-writerDone
	wg.Wait()
	cancel()
	<-served
	return lat
}

// startEdge runs an amphi edge in front of upstream until ctx ends and
// returns its base URL.
func startEdge(b *testing.B, ctx context.Context, upstream string) string {
	cfg := edge.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstreams = []string{upstream}
	e, err := edge.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Fatal(err)
	}
	go e.Serve(ctx, ln) //nolint:errcheck // ends with ctx
	return "http://" + ln.Addr().String()
}
