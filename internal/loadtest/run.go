// Package loadtest simulates thousands of LL-HLS listeners against an
// origin, an edge or any HLS server, and measures what they experience:
// part delivery latency, time to first audio, blocking-playlist waits,
// request and byte rates, stalls of a modelled player buffer, and errors by
// kind. It is what `amphi loadtest` runs.
//
// Each listener has its own keep-alive HTTP/1.1 connection (two for the
// hint behaviour), made from a spread of loopback source addresses when the
// target is loopback. On Linux, listeners over plain HTTP run as
// coroutines of one epoll loop per GOMAXPROCS (evloop); over TLS and on
// other systems each has a goroutine (two for hint). Recording never allocates:
// counters and histograms are fixed arrays of atomics.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"runtime"
	"sync"
	"time"

	"github.com/amphi-live/amphi/internal/evloop"
)

// runner is one load test in progress; shared read-only by the listeners
// except for the atomic groups.
type runner struct {
	cfg     Config
	target  *target
	resolve *resolver
	sources []netip.Addr
	timeout time.Duration

	multivariantPath string // "" when the URL is a media playlist
	playlistPath     string
	mediaURL         string
	stream           streamInfo

	groups [nBehaviours]*group
	loops  int // event loops running the listeners; 0: goroutines
	start  time.Time
	end    time.Time
	// rampEnd (unix nanoseconds) is the end of the ramp, by which every
	// listener has joined: media held from then on also counts as after
	// the ramp.
	rampEnd int64
}

// streamInfo is what the probe learnt about the stream.
type streamInfo struct {
	partTarget     time.Duration
	targetDuration time.Duration
	partHoldBack   time.Duration
	holdBack       time.Duration
	canSkipUntil   time.Duration
	canBlockReload bool
	timed          bool
}

// Run runs the load test described by cfg until cfg.Duration has passed or
// ctx is done, and reports what the listeners saw. It fails early when the
// URL does not lead to a media playlist.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, u, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg}
	for i := range r.groups {
		r.groups[i] = newGroup()
	}
	if r.target, err = newTarget(ctx, u); err != nil {
		return nil, err
	}
	r.sources = cfg.SourceIPs
	if r.sources == nil && r.target.loopback && netip.MustParseAddrPort(r.target.dialAddr).Addr().Is4() {
		r.sources = loopbackSources()
	}
	if err := r.probe(ctx, u); err != nil {
		return nil, err
	}
	r.timeout = cfg.Timeout
	if r.timeout == 0 {
		r.timeout = max(5*time.Second, 3*r.stream.targetDuration+time.Second)
	}

	userStart, sysStart, _ := cpuTime()
	r.start = time.Now()
	r.end = r.start.Add(cfg.Duration)
	r.rampEnd = r.start.Add(cfg.Ramp).UnixNano()
	runCtx, cancel := context.WithDeadline(ctx, r.end)
	defer cancel()

	var wg sync.WaitGroup
	var loops []*evloop.Loop
	if evloop.Available && !cfg.Goroutines && r.target.tls == nil {
		for range runtime.GOMAXPROCS(0) {
			lp, err := evloop.New(runCtx)
			if err != nil {
				cancel()
				wg.Wait()
				return nil, fmt.Errorf("event loop: %w", err)
			}
			loops = append(loops, lp)
			wg.Go(lp.Run)
		}
	}
	r.loops = len(loops)
	behaviours := cfg.Mix.assign(cfg.Listeners)
	wg.Go(func() { r.launch(runCtx, behaviours, loops, &wg) })
	var progressDone chan struct{}
	if cfg.Progress != nil {
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			r.progressLoop(runCtx, userStart+sysStart)
		}()
	}
	wg.Wait()
	if progressDone != nil {
		<-progressDone
	}
	elapsed := time.Since(r.start)
	if end := r.end.Sub(r.start); elapsed > end {
		elapsed = end
	}
	user, sys, rss := cpuTime()
	rep := r.report(elapsed, user-userStart, sys-sysStart, rss)
	rep.Interrupted = ctx.Err() != nil
	return rep, nil
}

// launch starts the listeners, evenly over the ramp: on the event loops
// round robin when there are any.
func (r *runner) launch(ctx context.Context, behaviours []Behaviour, loops []*evloop.Loop, wg *sync.WaitGroup) {
	n := len(behaviours)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, b := range behaviours {
		if r.cfg.Ramp > 0 {
			at := r.start.Add(time.Duration(int64(r.cfg.Ramp) * int64(i) / int64(n)))
			if d := time.Until(at); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		l := &listener{r: r, g: r.groups[b], be: b}
		var local netip.Addr
		if len(r.sources) > 0 {
			local = r.sources[i%len(r.sources)]
		}
		l.c = newConn(r.target, local)
		l.mc = l.c
		if b == Hint {
			l.mc = newConn(r.target, local)
		}
		if len(loops) == 0 {
			wg.Go(func() { l.run(ctx) })
			continue
		}
		lp := loops[i%len(loops)]
		l.c.lp, l.mc.lp = lp, lp
		if !lp.Add(func(t *evloop.Task) {
			l.t = t
			l.run(ctx)
		}) {
			return
		}
	}
}

// probe follows the URL to its media playlist once, before any listener
// starts, so that a wrong URL fails at once and clearly.
func (r *runner) probe(ctx context.Context, u *url.URL) error {
	var local netip.Addr
	if len(r.sources) > 0 {
		local = r.sources[0]
	}
	c := newConn(r.target, local)
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	var body []byte
	get := func(u *url.URL) error {
		res, err := c.get(time.Now().Add(10*time.Second), []byte(u.RequestURI()), &body)
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		if res.status != 200 {
			return fmt.Errorf("GET %s: HTTP %d", u, res.status)
		}
		return nil
	}
	if err := get(u); err != nil {
		return err
	}
	var pl mediaPlaylist
	err := pl.parse(body)
	if errors.Is(err, errMultivariant) {
		ref, verr := variantURI(body)
		if verr != nil {
			return fmt.Errorf("%s: %w", u, verr)
		}
		rel, perr := url.Parse(ref)
		if perr != nil {
			return fmt.Errorf("%s: bad variant URI %q", u, ref)
		}
		mu := u.ResolveReference(rel)
		if mu.Scheme != u.Scheme || mu.Host != u.Host {
			return fmt.Errorf("%s: the media playlist %s is on another host", u, mu)
		}
		r.multivariantPath = u.RequestURI()
		u = mu
		if err := get(u); err != nil {
			return err
		}
		err = pl.parse(body)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	r.mediaURL = u.String()
	r.playlistPath = u.RequestURI()
	r.resolve = newResolver(r.target, u)
	r.stream = streamInfo{
		partTarget:     pl.partTarget,
		targetDuration: pl.targetDuration,
		partHoldBack:   pl.partHoldBack,
		holdBack:       pl.holdBack,
		canSkipUntil:   pl.canSkipUntil,
		canBlockReload: pl.canBlockReload,
		timed:          pl.timed,
	}
	if pl.ended {
		return fmt.Errorf("%s: the broadcast has ended (EXT-X-ENDLIST)", u)
	}
	return nil
}

// Progress is the state of a running test, for a progress line.
type Progress struct {
	Elapsed, Duration time.Duration
	Joined, Playing   int64
	Listeners         int
	RequestsPerSec    float64 // over the last interval
	BytesPerSec       float64 // over the last interval
	PartLatencyP50    time.Duration
	PartLatencyP99    time.Duration
	Errors, Stalls    int64
	Cores             float64 // CPU used by this process over the last interval
	Goroutines        int
}

func (p Progress) String() string {
	return fmt.Sprintf("%3.0fs/%.0fs  %d/%d joined  %d playing  %.0f req/s  %.1f MB/s  part p50/p99 %d/%dms  errors %d  stalls %d  cpu %.2f",
		p.Elapsed.Seconds(), p.Duration.Seconds(), p.Joined, p.Listeners, p.Playing,
		p.RequestsPerSec, p.BytesPerSec/1e6, p.PartLatencyP50.Milliseconds(), p.PartLatencyP99.Milliseconds(),
		p.Errors, p.Stalls, p.Cores)
}

func (r *runner) progressLoop(ctx context.Context, cpu0 time.Duration) {
	tick := time.NewTicker(r.cfg.ProgressInterval)
	defer tick.Stop()
	lastAt, lastCPU := r.start, cpu0
	var lastReqs, lastBytes int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			u, s, _ := cpuTime()
			var p Progress
			lat := &histSnapshot{}
			for b, g := range r.groups {
				p.Joined += g.listeners.Load()
				p.Playing += g.playing.Load()
				p.Errors += g.errorCount()
				p.Stalls += g.stalls.Load()
				if Behaviour(b) != Legacy {
					lat.merge(g.latency.snapshot())
				}
			}
			var reqs, bytes int64
			for _, g := range r.groups {
				reqs += g.requestCount()
				bytes += g.bytes.Load()
			}
			dt := now.Sub(lastAt).Seconds()
			p.Elapsed, p.Duration, p.Listeners = now.Sub(r.start), r.cfg.Duration, r.cfg.Listeners
			p.RequestsPerSec = float64(reqs-lastReqs) / dt
			p.BytesPerSec = float64(bytes-lastBytes) / dt
			p.PartLatencyP50 = time.Duration(lat.quantile(0.5)) * time.Microsecond
			p.PartLatencyP99 = time.Duration(lat.quantile(0.99)) * time.Microsecond
			p.Cores = (u + s - lastCPU).Seconds() / dt
			p.Goroutines = runtime.NumGoroutine()
			lastAt, lastCPU, lastReqs, lastBytes = now, u+s, reqs, bytes
			r.cfg.Progress(p)
		}
	}
}
