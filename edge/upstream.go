package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxUpstreamBody bounds one upstream response.
const maxUpstreamBody = 32 << 20

// response is an upstream answer, read whole: playlists and audio media
// are small, and a cached object must be complete anyway.
type response struct {
	status int
	body   []byte
	age    time.Duration // the upstream's Age header
	from   string        // upstream base, for logs
}

// upstreams is the configured origins (or parent edges). Requests go to the
// current one; a refused connection, a 5xx or a timeout moves to the next.
// Only these hosts are ever contacted: the edge is not an open proxy.
type upstreams struct {
	bases  []*url.URL
	cur    atomic.Int32
	client *http.Client
	log    *slog.Logger
	count  func(kind string) // counts upstream requests by kind (metrics)
}

func newUpstreams(raw []string, log *slog.Logger) (*upstreams, error) {
	u := &upstreams{log: log, count: func(string) {}}
	for _, r := range raw {
		b, err := url.Parse(r)
		if err != nil || (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" {
			return nil, fmt.Errorf("upstreams: %q is not an http(s) URL", r)
		}
		if b.RawQuery != "" || b.Fragment != "" {
			return nil, fmt.Errorf("upstreams: %q must not have a query or fragment", r)
		}
		u.bases = append(u.bases, b)
	}
	if len(u.bases) == 0 {
		return nil, errors.New("upstreams: at least one upstream is required")
	}
	u.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // never through an environment proxy
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
			// Playlists are small; compression costs more than it saves
			// on the fill path.
			DisableCompression: true,
		},
		// Upstream redirects could lead anywhere; never follow them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return u, nil
}

// target maps a broadcast file to its URL on upstream base: the base path
// plus /live/NAME/FILE, or, when the base holds {name}, NAME substituted
// there and FILE appended (for origins laid out differently).
func target(base *url.URL, name, file, rawQuery string) string {
	u := *base
	if strings.Contains(u.Path, "{name}") {
		u.Path = strings.ReplaceAll(u.Path, "{name}", name)
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + file
	} else {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/live/" + name + "/" + file
	}
	u.RawPath = ""
	u.RawQuery = rawQuery
	return u.String()
}

// errAllDown is returned when every upstream failed.
var errAllDown = errors.New("every upstream failed")

// get fetches name/file with the (already normalised) query from the
// current upstream, failing over on connection errors, timeouts and 5xx.
// A 4xx is an answer, not a failure. timeout bounds each attempt; ctx
// bounds the whole call (a caller that gives up is not an upstream fault).
func (u *upstreams) get(ctx context.Context, kind, name, file, rawQuery string, timeout time.Duration) (*response, error) {
	n := len(u.bases)
	start := int(u.cur.Load())
	var lastErr error
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		base := u.bases[idx]
		res, err := u.fetch(ctx, kind, target(base, name, file, rawQuery), timeout)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && !failover(res.status, rawQuery) {
			if idx != start {
				u.cur.CompareAndSwap(int32(start), int32(idx))
				u.log.Warn("switched upstream", "to", base.String())
			}
			res.from = base.String()
			return res, nil
		}
		if err == nil {
			err = fmt.Errorf("status %d", res.status)
		}
		lastErr = fmt.Errorf("%s: %w", base.Host, err)
		u.log.Debug("upstream failed", "upstream", base.String(), "file", file, "err", err)
	}
	return nil, fmt.Errorf("%w: %w", errAllDown, lastErr)
}

// failover tells whether a status means "try the next upstream". A 503 on
// a blocking playlist request is the LL-HLS answer to a hold that timed
// out, not a failure.
func failover(status int, rawQuery string) bool {
	switch {
	case status == http.StatusServiceUnavailable:
		return !strings.Contains(rawQuery, "_HLS_msn=")
	case status >= 500:
		return true
	}
	return false
}

func (u *upstreams) fetch(ctx context.Context, kind, rawURL string, timeout time.Duration) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "amphi-edge")
	u.count(kind)
	res, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxUpstreamBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxUpstreamBody {
		return nil, fmt.Errorf("response larger than %d bytes", maxUpstreamBody)
	}
	out := &response{status: res.StatusCode, body: body}
	if a, err := strconv.Atoi(res.Header.Get("Age")); err == nil && a > 0 {
		out.age = time.Duration(a) * time.Second
	}
	return out, nil
}
