//go:build linux

package main

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// tickFeed is the goroutine server's clock of parts: the last tick passed
// and a channel closed when the next one passes, as llhls.Feed wakes the
// requests held on a playlist.
type tickFeed struct {
	mu   sync.Mutex
	cur  int64
	next chan struct{}
}

func (f *tickFeed) state() (int64, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.next
}

func (f *tickFeed) advance(k int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = k
	close(f.next)
	f.next = make(chan struct{})
}

// serveGoroutines answers as serve does, but with a goroutine per
// connection over Go's poller, the way amphi's h1 server runs: rawsock's
// raw calls, the answer sent and the next request awaited in one SendRecv,
// and held requests parked on the feed's channel. Against serve, it shows
// what that model costs without HTTP or LL-HLS.
func serveGoroutines(ln net.Listener, period time.Duration, plSize, partSize int, stop <-chan struct{}) (serverReport, error) {
	var r serverReport
	playlist := answer("application/vnd.apple.mpegurl", plSize)
	part := answer("audio/mp4", partSize)
	first := nextTick(time.Now(), period)
	feed := &tickFeed{cur: first.UnixNano()/int64(period) - 1, next: make(chan struct{})}
	var answers, short, accepted atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}

	wg.Go(func() {
		timer := time.NewTimer(time.Until(first))
		defer timer.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-timer.C:
				feed.advance(now.UnixNano() / int64(period))
				timer.Reset(time.Until(nextTick(now, period)))
			}
		}
	})
	cpu0, start := cpuSeconds(), time.Now()
	wg.Go(func() {
		<-stop
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	for {
		nc, err := ln.Accept()
		if err != nil {
			break
		}
		accepted.Add(1)
		mu.Lock()
		select {
		case <-stop: // the stopper has closed the others already
			mu.Unlock()
			nc.Close()
			continue
		default:
			conns[nc] = true
		}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, nc)
				mu.Unlock()
				nc.Close()
			}()
			sock := rawsock.New(nc)
			if sock == nil {
				return
			}
			buf := make([]byte, 4096)
			var n int
			var out []byte
			for {
				var m int
				var err error
				if out != nil {
					var unsent []byte
					unsent, m, err = sock.SendRecv(out, buf[n:], true)
					answers.Add(1)
					if len(unsent) > 0 {
						short.Add(1)
						if _, err = sock.Write(unsent); err == nil {
							m, err = sock.Read(buf[n:])
						}
					}
					out = nil
				} else {
					m, err = sock.Read(buf[n:])
				}
				if err != nil || m == 0 {
					return
				}
				n += m
				for {
					end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
					if end < 0 {
						break
					}
					if out != nil { // pipelined: send the previous answer first
						if _, err := sock.Write(out); err != nil {
							return
						}
						answers.Add(1)
					}
					out = part
					if k, ok := heldTick(buf[:end]); ok {
						for held := false; ; held = true {
							cur, next := feed.state()
							if k <= cur {
								if held {
									sock.DelayAcks() // as h1 does after a hold
								}
								break
							}
							select {
							case <-next:
							case <-stop:
								return
							}
						}
						out = playlist
					}
					n = copy(buf, buf[end+4:n])
				}
				if n == len(buf) {
					n = 0 // a floor does not parse long requests
				}
			}
		})
	}
	wg.Wait()
	r.accepted, r.answers, r.short = int(accepted.Load()), int(answers.Load()), int(short.Load())
	r.cpu, r.wall = cpuSeconds()-cpu0, time.Since(start)
	return r, nil
}
