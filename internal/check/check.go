// Package check verifies from outside that an LL-HLS deployment (an amphi
// origin or edge, or any other server or CDN) follows the rules of LLHLS.md
// §1–4 that a client can observe.
//
// Run follows one media playlist with blocking reloads for a while, as a
// low-latency player does, and meanwhile sends the probes a player or cache
// may send: delivery directives at and past the limits, a request for the
// preload-hinted part, HEAD and Range, gzip, a CORS preflight, a delta
// update. Each rule (see Rules) is then judged from what was seen and
// reported as PASS, FAIL or SKIP with its evidence.
//
// The layers: m3u8.go is a tolerant playlist parser; client.go is an HTTP
// client bound to the URL's host that keeps every exchange; follow.go follows
// the live playlist; probes.go sends the probes; rules_*.go judge.
package check

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Switch is a setting that can be forced on or off or left to the checker.
type Switch int

// The values of a Switch.
const (
	Auto Switch = iota
	On
	Off
)

// Config configures a check.
type Config struct {
	// URL is a multivariant or media playlist URL (http or https). Required.
	// Only its scheme and host are ever contacted.
	URL string
	// Duration is how long the live playlist is followed. Default 15s.
	Duration time.Duration
	// Strict503 sends a blocking request that cannot be met within 3 target
	// durations and requires it to end in 503, not in 200 with a playlist
	// that lacks the part. It takes up to 3 target durations. Default Auto:
	// on when Duration ≥ 3 × target duration + 2s.
	Strict503 Switch
	// ExpectCache makes the age rule fail, rather than skip, when no answer
	// shows signs of a cache (Age, Via, X-Cache). Default false.
	ExpectCache bool
	// Timeout bounds one non-blocking request; a blocking one gets 3 target
	// durations more. Default 5s.
	Timeout time.Duration
	// Slack is added to every timing bound (a reload for the next part
	// within 3 × PART-TARGET + 0.5s, a 400 within 1s, …) for slow links or
	// busy machines. Default 0.
	Slack time.Duration
}

// DefaultDuration is the default of Config.Duration.
const DefaultDuration = 15 * time.Second

func (c *Config) validate() (*url.URL, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL %q: want an http:// or https:// playlist URL", c.URL)
	}
	switch {
	case c.Duration == 0:
		c.Duration = DefaultDuration
	case c.Duration < 0:
		return nil, fmt.Errorf("Duration: %v is negative", c.Duration)
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = 5 * time.Second
	case c.Timeout < 0:
		return nil, fmt.Errorf("Timeout: %v is negative", c.Timeout)
	}
	if c.Slack < 0 {
		return nil, fmt.Errorf("Slack: %v is negative", c.Slack)
	}
	if c.Strict503 < Auto || c.Strict503 > Off {
		return nil, fmt.Errorf("Strict503: %d is not Auto, On or Off", c.Strict503)
	}
	return u, nil
}

// Run checks cfg.URL and returns the report. It returns an error only when
// the check could not be made at all: a bad configuration, a URL that does
// not answer with a playlist, or ctx ending.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, c: newClient(u, cfg.Timeout), live: newLive()}
	if err := r.discover(ctx); err != nil {
		return nil, err
	}
	r.observe(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return newReport(cfg.URL, r.evaluate()), nil
}

// run holds everything one check observed. The follower and the probes
// write disjoint fields while they run; the rules read them afterwards.
type run struct {
	cfg  Config
	c    *client
	live *live

	// Set by discover.
	mv        *multivariant // nil when URL is a media playlist
	media     []string      // absolute media playlist URLs on the URL's host; media[0] is followed
	elsewhere []string      // absolute media playlist URLs on other hosts, never fetched
	first     *mediaPlaylist
	td, pt    time.Duration
	strict    bool
	llStream  bool // PART-INF and CAN-BLOCK-RELOAD=YES: blocking reloads

	// Written by the follower.
	reloads []reload

	// Written by the probes.
	others     []other
	partAlone  *response
	tooFar     *directiveProbe
	msnOnly    *directiveProbe
	unmeetable *directiveProbe
	hinted     *hintedProbe
	media0     mediaProbe
	notFound   *response
	preflight  *response
	gzipMV     *pairProbe
	gzipMedia  *pairProbe
	delta      *pairProbe
}

// reload is one fetch of the followed playlist.
type reload struct {
	res      *response
	pl       *mediaPlaylist // nil when the answer was not a playlist
	perr     error
	blocking bool
	want     position // the part a blocking reload asked for
}

// other is one fetch of a media playlist that is not followed.
type other struct {
	url  string
	res  *response
	pl   *mediaPlaylist
	perr error
}

func (r *run) primary() string { return r.media[0] }

// discover fetches the URL, and the first media playlist when the URL is a
// multivariant playlist, and derives the durations the probes need.
func (r *run) discover(ctx context.Context) error {
	// The first answers may be held until the stream has a segment.
	res := r.c.do(ctx, request{url: r.cfg.URL, kind: kindPlaylist, timeout: 3 * r.cfg.Timeout})
	if err := answeredPlaylist(res); err != nil {
		return err
	}
	if isMultivariant(res.body) {
		res.kind = kindMultivariant
		mv, err := parseMultivariant(res.body)
		if err != nil {
			return fmt.Errorf("%s: malformed multivariant playlist: %w", r.cfg.URL, err)
		}
		r.mv = mv
		for _, ref := range mv.mediaURIs() {
			abs, err := resolve(r.cfg.URL, ref)
			if err != nil {
				return fmt.Errorf("%s: bad media playlist URI %q: %w", r.cfg.URL, ref, err)
			}
			if u, _ := url.Parse(abs); u == nil || !r.c.allowed(u) {
				r.elsewhere = append(r.elsewhere, abs)
				continue
			}
			r.media = append(r.media, abs)
		}
		if len(r.media) == 0 {
			return fmt.Errorf("%s lists no media playlist on its own host", r.cfg.URL)
		}
		res = r.c.do(ctx, request{url: r.primary(), kind: kindPlaylist, timeout: 3 * r.cfg.Timeout})
		if err := answeredPlaylist(res); err != nil {
			return err
		}
	} else {
		r.media = []string{r.cfg.URL}
	}
	pl, err := parseMedia(res.body)
	if err != nil {
		return fmt.Errorf("%s: malformed media playlist: %w", res.url, err)
	}
	r.first = pl
	r.reloads = append(r.reloads, reload{res: res, pl: pl})
	r.live.publish(pl)

	r.td = 2 * time.Second // only when TARGETDURATION is missing; the rule says so
	if pl.hasTarget && pl.targetDuration > 0 {
		r.td = time.Duration(pl.targetDuration) * time.Second
	}
	r.pt = time.Duration(pl.partTarget * float64(time.Second))
	r.llStream = pl.isLL() && pl.sc["CAN-BLOCK-RELOAD"] == "YES" && !pl.ended
	switch r.cfg.Strict503 {
	case On:
		r.strict = r.llStream
	case Auto:
		r.strict = r.llStream && r.cfg.Duration >= 3*r.td+2*time.Second
	}
	return nil
}

func answeredPlaylist(res *response) error {
	if res.err != nil {
		return fmt.Errorf("%s: %w", res.url, res.err)
	}
	if res.status != http.StatusOK {
		return fmt.Errorf("%s answered %d, not a playlist", res.url, res.status)
	}
	return nil
}

// observe follows the playlist for the configured duration while the
// probes run, then sends the probes that compare two renderings of one
// playlist version.
func (r *run) observe(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Duration)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer r.live.stop()
		r.follow(ctx, deadline)
	})
	wg.Go(func() { r.probe(ctx) })
	if r.strict {
		wg.Go(func() { r.probeUnmeetable(ctx) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	r.probeGzipMedia(ctx)
	r.probeDelta(ctx)
}

// holdTimeout bounds a blocking request: the server's hold limit of 3
// target durations, plus the usual timeout.
func (r *run) holdTimeout() time.Duration { return 3*r.td + r.cfg.Timeout }

// advancePartLimit is how far ahead a client may ask for a part (§6.2.5.2).
func advancePartLimit(pt time.Duration) uint64 {
	if pt > 0 && pt < time.Second {
		return uint64(math.Ceil(3 / pt.Seconds()))
	}
	return 3
}

// live shares the newest playlist of the follower with the probes. Waiters
// wake on a closed channel: publish closes the current one and installs a
// new one.
type live struct {
	mu      sync.Mutex
	cur     *mediaPlaylist
	changed chan struct{}
	stopped bool
}

func newLive() *live { return &live{changed: make(chan struct{})} }

func (l *live) publish(p *mediaPlaylist) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.cur = p
	close(l.changed)
	l.changed = make(chan struct{})
}

// stop wakes every waiter for good: no update follows.
func (l *live) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.stopped = true
		close(l.changed)
	}
}

func (l *live) current() *mediaPlaylist {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// next waits for the next update and returns it; nil when the follower has
// stopped or ctx ended.
func (l *live) next(ctx context.Context) *mediaPlaylist {
	l.mu.Lock()
	ch, stopped := l.changed, l.stopped
	l.mu.Unlock()
	if stopped {
		return nil
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil
	}
	return l.cur
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
