package loadtest

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Behaviour is how a simulated listener follows the stream.
type Behaviour int

const (
	// LL is hls.js in low-latency mode: a blocking playlist request for the
	// next part (_HLS_msn/_HLS_part, rolling to part 0 of the next segment),
	// then the new parts; delta updates (_HLS_skip=YES) when the playlist
	// offers them.
	LL Behaviour = iota
	// Hint is AVPlayer and Shaka: the EXT-X-PRELOAD-HINT part is requested
	// in parallel with the blocking playlist request, over a second
	// connection; at a segment boundary it asks _HLS_msn alone, as Safari
	// does.
	Hint
	// Legacy is plain HLS: reload the playlist every target duration and
	// fetch whole segments.
	Legacy
	nBehaviours
)

var behaviourNames = [nBehaviours]string{"ll", "hint", "legacy"}

func (b Behaviour) String() string { return behaviourNames[b] }

// Mix is the share of listeners of each behaviour; the shares sum to 1.
type Mix [nBehaviours]float64

// DefaultMix is 80 % ll, 10 % hint, 10 % legacy.
var DefaultMix = Mix{LL: 0.8, Hint: 0.1, Legacy: 0.1}

// ParseMix reads "ll=0.8,hint=0.1,legacy=0.1". Behaviours left out get 0;
// the weights are normalised to sum to 1.
func ParseMix(s string) (Mix, error) {
	var m Mix
	var seen [nBehaviours]bool
	sum := 0.0
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, ok := strings.Cut(item, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix: %q is not name=weight", item)
		}
		b := -1
		for i, n := range behaviourNames {
			if strings.TrimSpace(name) == n {
				b = i
			}
		}
		if b < 0 {
			return Mix{}, fmt.Errorf("mix: unknown behaviour %q (want ll, hint or legacy)", name)
		}
		if seen[b] {
			return Mix{}, fmt.Errorf("mix: %s given twice", name)
		}
		seen[b] = true
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || w < 0 || math.IsInf(w, 0) || math.IsNaN(w) {
			return Mix{}, fmt.Errorf("mix: weight of %s must be a non-negative number, got %q", name, val)
		}
		m[b] = w
		sum += w
	}
	if sum <= 0 {
		return Mix{}, errors.New("mix: the weights sum to 0")
	}
	for i := range m {
		m[i] /= sum
	}
	return m, nil
}

func (m Mix) String() string {
	var parts []string
	for i, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%g", behaviourNames[i], math.Round(w*1000)/1000))
		}
	}
	return strings.Join(parts, ",")
}

// assign gives listener i of n its behaviour so that every prefix of the
// listeners (those joined so far during a ramp) follows the mix.
func (m Mix) assign(n int) []Behaviour {
	out := make([]Behaviour, n)
	var got [nBehaviours]float64
	for i := range out {
		best, bestDeficit := LL, math.Inf(-1)
		for b := range nBehaviours {
			if m[b] == 0 {
				continue
			}
			if d := float64(i+1)*m[b] - got[b]; d > bestDeficit {
				best, bestDeficit = b, d
			}
		}
		out[i] = best
		got[best]++
	}
	return out
}

// ParseSourceIPs reads an IPv4 range "127.0.0.1-127.0.0.254", a single
// address, or a comma-separated list of either.
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("source IPs: %q is not an IP address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(hi))
		if err != nil {
			return nil, fmt.Errorf("source IPs: %q is not an IP address", hi)
		}
		if !a.Is4() || !b.Is4() {
			return nil, fmt.Errorf("source IPs: range %q must be IPv4", item)
		}
		if b.Less(a) {
			return nil, fmt.Errorf("source IPs: range %q ends before it starts", item)
		}
		for ip := a; ; ip = ip.Next() {
			out = append(out, ip)
			if len(out) > 1<<16 {
				return nil, fmt.Errorf("source IPs: more than %d addresses", 1<<16)
			}
			if ip == b {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("source IPs: none given")
	}
	return out, nil
}

// Config describes one load test.
type Config struct {
	// URL is a multivariant or media playlist (http or https). Required.
	URL string
	// Listeners is how many listeners join. Default 100.
	Listeners int
	// Duration is how long the test runs, ramp included; every loop stops
	// by itself when it is over. Default 30s.
	Duration time.Duration
	// Ramp spreads the joins evenly over this time. 0 (the default) joins
	// every listener at once: a join storm.
	Ramp time.Duration
	// Mix is the share of each behaviour. Default DefaultMix.
	Mix Mix
	// SourceIPs are the local addresses connections are made from, round
	// robin, so that tens of thousands of connections to one loopback port
	// do not run out of ephemeral ports. Default: 127.0.0.1-127.0.0.254
	// when the target is IPv4 loopback, else the system's choice.
	SourceIPs []netip.Addr
	// Timeout bounds one request, dial included. Default 0: the larger of
	// 5 s and 3 × target duration + 1 s (the longest a server may hold a
	// blocking request, plus a margin).
	Timeout time.Duration
	// Progress, when set, is called every ProgressInterval with the
	// figures so far, from one goroutine.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called. Default 1s.
	ProgressInterval time.Duration
	// Goroutines runs every listener on a goroutine of its own, over Go's
	// poller, instead of on event loops (Linux, plain HTTP): the
	// generator's model before the loops, kept to compare the two.
	Goroutines bool
}

// withDefaults fills in defaults and validates; errors name the field.
func (c Config) withDefaults() (Config, *url.URL, error) {
	if c.Listeners == 0 {
		c.Listeners = 100
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return c, nil, errors.New("url: required")
	case err != nil:
		return c, nil, fmt.Errorf("url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return c, nil, fmt.Errorf("url: %q: want an http:// or https:// URL", c.URL)
	case u.Host == "":
		return c, nil, fmt.Errorf("url: %q has no host", c.URL)
	case c.Listeners < 0 || c.Listeners > 1_000_000:
		return c, nil, fmt.Errorf("listeners: %d is not in 1..1000000", c.Listeners)
	case c.Duration < 0:
		return c, nil, fmt.Errorf("duration: %v is negative", c.Duration)
	case c.Ramp < 0 || c.Ramp >= c.Duration:
		return c, nil, fmt.Errorf("ramp: %v must be at least 0 and shorter than duration %v", c.Ramp, c.Duration)
	case c.Timeout < 0:
		return c, nil, fmt.Errorf("timeout: %v is negative", c.Timeout)
	}
	sum := 0.0
	for _, w := range c.Mix {
		if w < 0 {
			return c, nil, errors.New("mix: negative share")
		}
		sum += w
	}
	if math.Abs(sum-1) > 1e-6 {
		return c, nil, fmt.Errorf("mix: shares sum to %g, not 1", sum)
	}
	u.Fragment = ""
	return c, u, nil
}

// loopbackSources is the default spread for loopback targets.
func loopbackSources() []netip.Addr {
	ips, _ := ParseSourceIPs("127.0.0.1-127.0.0.254")
	return ips
}
