package check

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// checkOrigin is the Origin header every request carries, as a browser
// player on another site would send it, so that the CORS answers can be judged.
const checkOrigin = "https://amphi-check.invalid"

// maxBody bounds a response body.
const maxBody = 32 << 20

// kind classifies a request for the HTTP-profile rules (cache-control, age,
// cors), which judge the answers to ordinary player requests.
type kind int

const (
	kindMultivariant kind = iota
	kindPlaylist          // media playlist without delivery directives
	kindBlocking          // media playlist with _HLS_msn
	kindMedia             // init section, part or segment
	kindProbe             // a deliberately odd request (400, 404, HEAD, Range, OPTIONS, gzip, delta)
)

// response is one HTTP exchange as the rules see it.
type response struct {
	kind    kind
	method  string
	url     string
	status  int
	header  http.Header
	body    []byte // decoded when Content-Encoding was gzip
	wireLen int    // bytes on the wire
	gzipped bool
	elapsed time.Duration
	err     error
}

// ok reports a 200 answer.
func (r *response) ok() bool { return r.err == nil && r.status == http.StatusOK }

// describe is a short account of a failed or unexpected answer.
func (r *response) describe() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d after %s", r.status, seconds(r.elapsed))
}

// request is what client.do sends.
type request struct {
	method  string // default GET
	url     string
	kind    kind
	header  http.Header
	timeout time.Duration // default client.timeout
}

// client talks to the one host of the URL under test and keeps every
// exchange for the rules. It never follows a link or redirect elsewhere.
type client struct {
	hc      *http.Client
	scheme  string
	host    string
	timeout time.Duration

	mu  sync.Mutex
	log []*response
}

var errOtherHost = errors.New("refusing to contact a host other than the URL's")

// newClient returns a client for base's scheme and host. It connects
// directly (no proxy from the environment: a proxy would be measured too).
func newClient(base *url.URL, timeout time.Duration) *client {
	c := &client{scheme: base.Scheme, host: base.Host, timeout: timeout}
	c.hc = &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			// Accept-Encoding is set by hand where the gzip rule wants it.
			DisableCompression:  true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			if !c.allowed(req.URL) {
				return errOtherHost
			}
			return nil
		},
	}
	return c
}

func (c *client) allowed(u *url.URL) bool {
	return u.Scheme == c.scheme && u.Host == c.host
}

// do sends rq and records the exchange. Transport errors are in the
// response, never returned apart.
func (c *client) do(ctx context.Context, rq request) *response {
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	if rq.timeout <= 0 {
		rq.timeout = c.timeout
	}
	res := &response{kind: rq.kind, method: rq.method, url: rq.url}
	defer c.record(res)
	u, err := url.Parse(rq.url)
	if err != nil {
		res.err = err
		return res
	}
	if !c.allowed(u) {
		res.err = fmt.Errorf("%s: %w", u.Host, errOtherHost)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, rq.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, nil)
	if err != nil {
		res.err = err
		return res
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	req.Header.Set("Origin", checkOrigin)
	req.Header.Set("User-Agent", "amphi-check")
	start := time.Now()
	hr, err := c.hc.Do(req)
	if err != nil {
		res.elapsed = time.Since(start)
		res.err = shortError(err, rq.timeout)
		return res
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody+1))
	res.elapsed = time.Since(start)
	res.status, res.header, res.wireLen = hr.StatusCode, hr.Header, len(body)
	if err != nil {
		res.err = shortError(err, rq.timeout)
		return res
	}
	if len(body) > maxBody {
		res.err = fmt.Errorf("body larger than %d bytes", maxBody)
		return res
	}
	res.body = body
	if hr.Header.Get("Content-Encoding") == "gzip" && len(body) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			res.body, err = io.ReadAll(io.LimitReader(zr, maxBody))
		}
		if err != nil {
			res.err = fmt.Errorf("bad gzip body: %v", err)
			return res
		}
		res.gzipped = true
	}
	return res
}

func shortError(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s", seconds(timeout))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *client) record(r *response) {
	c.mu.Lock()
	c.log = append(c.log, r)
	c.mu.Unlock()
}

// responses returns every exchange so far.
func (c *client) responses() []*response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*response(nil), c.log...)
}

// resolve resolves ref against base.
func resolve(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(r).String(), nil
}

// withQuery returns u with the delivery directives q appended to its own
// query (a token the operator put in the URL is kept; _HLS_ parameters are
// replaced).
func withQuery(u, q string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	var keep []string
	for _, kv := range strings.Split(p.RawQuery, "&") {
		if kv != "" && !strings.HasPrefix(kv, "_HLS_") {
			keep = append(keep, kv)
		}
	}
	if q != "" {
		keep = append(keep, q)
	}
	p.RawQuery = strings.Join(keep, "&")
	return p.String()
}

// blockingQuery renders delivery directives in the order clients use.
func blockingQuery(q position, withPart, skip bool) string {
	s := fmt.Sprintf("_HLS_msn=%d", q.msn)
	if withPart {
		s += fmt.Sprintf("&_HLS_part=%d", q.part)
	}
	if skip {
		s += "&_HLS_skip=YES"
	}
	return s
}

// seconds formats d as seconds to the millisecond ("0.213s", "3s").
func seconds(d time.Duration) string {
	return num(d.Round(time.Millisecond).Seconds()) + "s"
}

// secondsF formats a playlist duration in seconds like seconds does.
func secondsF(f float64) string { return seconds(time.Duration(f * float64(time.Second))) }

// num formats a playlist number without trailing zeros, to 5 decimals.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*1e5)/1e5, 'f', -1, 64)
}
