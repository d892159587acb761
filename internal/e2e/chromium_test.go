package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath is the Debian chromium package's binary, which .ci/run
// installs.
const chromiumPath = "/usr/bin/chromium"

// needBrowser skips t unless Chromium and hls.js (npm ci --prefix
// internal/e2e) are installed; .ci/run installs both.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("Chromium is not installed (%v); apt-get install chromium", err)
	}
	if _, err := os.Stat(filepath.Join(hlsjsDir, "hls.min.js")); err != nil {
		t.Skipf("hls.js is not installed (%v); npm ci --prefix internal/e2e", err)
	}
}

// probeJS runs in every page before the page's own scripts. It hides the
// browser's native HLS support, so that the player page takes its hls.js
// path (the page uses native playback whenever canPlayType says it can, and
// Chromium may), and records for the test what the page cannot tell it:
// the media element's events and every hls.js ERROR event, fatal or not,
// of every hls.js instance the page creates.
const probeJS = `(function () {
  "use strict";
  var t0 = performance.now();
  function now() { return (performance.now() - t0) / 1000; }
  var probe = { events: [], hlsErrors: [], hlsInstances: 0, nativeHLS: null };
  window.__e2e = probe;
  // Keep every request's timing for the diagnostics (the default is 250).
  performance.setResourceTimingBufferSize(20000);

  var canPlayType = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function (type) {
    var answer = canPlayType.call(this, type);
    if (/mpegurl/i.test(String(type))) {
      probe.nativeHLS = answer;
      return "";
    }
    return answer;
  };

  ["playing", "waiting", "stalled", "pause", "ended", "error", "seeking"].forEach(function (name) {
    document.addEventListener(name, function (ev) {
      if (ev.target instanceof HTMLMediaElement) {
        probe.events.push({ name: name, at: now(), currentTime: ev.target.currentTime });
      }
    }, true);
  });

  // The page assigns window.amphiPlayer once, then sets its hls field to
  // each new instance before loading the stream: hook both assignments.
  function hook(hls) {
    probe.hlsInstances++;
    hls.on(window.Hls.Events.ERROR, function (event, data) {
      data = data || {};
      probe.hlsErrors.push({
        at: now(),
        type: String(data.type),
        details: String(data.details),
        fatal: !!data.fatal,
        reason: String(data.reason || (data.error && data.error.message) || "")
      });
    });
  }
  var player;
  Object.defineProperty(window, "amphiPlayer", {
    configurable: true,
    get: function () { return player; },
    set: function (p) {
      player = p;
      var hls = p.hls;
      Object.defineProperty(p, "hls", {
        configurable: true,
        enumerable: true,
        get: function () { return hls; },
        set: function (h) { hls = h; if (h) { hook(h); } }
      });
    }
  });
})();`

// sampleJS reads the page's state in one round trip.
const sampleJS = `(function () {
  var a = document.getElementById("audio");
  var p = window.amphiPlayer || {};
  var h = p.hls;
  function num(v) { return typeof v === "number" && isFinite(v) ? v : -1; }
  return {
    currentTime: a.currentTime,
    paused: a.paused,
    readyState: a.readyState,
    state: document.body.dataset.state || "",
    message: p.message || "",
    mode: p.mode || "",
    latency: h ? num(h.latency) : -1,
    targetLatency: h ? num(h.targetLatency) : -1
  };
})()`

// sample is the player's state at one moment.
type sample struct {
	At          time.Duration `json:"-"` // since sampling started
	CurrentTime float64       `json:"currentTime"`
	Paused      bool          `json:"paused"`
	ReadyState  int           `json:"readyState"`
	State       string        `json:"state"`
	Message     string        `json:"message"`
	Mode        string        `json:"mode"`
	// Latency is hls.latency, how far behind the live edge hls.js plays,
	// and TargetLatency hls.targetLatency, how far it aims to (in
	// low-latency mode, the playlist's PART-HOLD-BACK); seconds, -1 when
	// unknown.
	Latency       float64 `json:"latency"`
	TargetLatency float64 `json:"targetLatency"`
}

// mediaEvent is one event of the page's audio element.
type mediaEvent struct {
	Name        string  `json:"name"`
	At          float64 `json:"at"` // seconds since the page started
	CurrentTime float64 `json:"currentTime"`
}

// hlsError is one hls.js ERROR event.
type hlsError struct {
	At      float64 `json:"at"`
	Type    string  `json:"type"`
	Details string  `json:"details"`
	Fatal   bool    `json:"fatal"`
	Reason  string  `json:"reason"`
}

func (e hlsError) String() string {
	kind := "non-fatal"
	if e.Fatal {
		kind = "fatal"
	}
	s := fmt.Sprintf("%.1fs %s %s: %s", e.At, kind, e.Type, e.Details)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// probeLog is what probeJS recorded.
type probeLog struct {
	Events       []mediaEvent `json:"events"`
	HLSErrors    []hlsError   `json:"hlsErrors"`
	HLSInstances int          `json:"hlsInstances"`
	NativeHLS    *string      `json:"nativeHLS"` // canPlayType's real answer; nil if never asked
}

// fatal returns the fatal hls.js errors.
func (l probeLog) fatal() []hlsError {
	var out []hlsError
	for _, e := range l.HLSErrors {
		if e.Fatal {
			out = append(out, e)
		}
	}
	return out
}

// blipLimit is the longest "waiting" that is not counted as a stall: on
// a busy machine Chromium's audio renderer underflows for a few
// milliseconds with seconds of audio buffered ("waiting", then "playing"
// 5 ms later), which no server can cause or prevent. A late part or a
// player that stops loading stalls for hundreds of milliseconds at least.
const blipLimit = 250 * time.Millisecond

// stalls returns the playback stalls after page time from: the media
// element waiting or stalled for blipLimit or longer (or for good), and
// every hls.js bufferStalledError. blips returns the shorter waits.
func (l probeLog) stalls(from float64) (stalls, blips []string) {
	for i, e := range l.Events {
		if e.At < from || (e.Name != "waiting" && e.Name != "stalled") {
			continue
		}
		resumed := math.Inf(1)
		for _, next := range l.Events[i+1:] {
			if next.Name == "playing" {
				resumed = next.At
				break
			}
		}
		d := time.Duration((resumed - e.At) * float64(time.Second))
		desc := fmt.Sprintf("%.1fs %s at currentTime %.2f for %v", e.At, e.Name, e.CurrentTime, d.Round(time.Millisecond))
		if math.IsInf(resumed, 1) {
			desc = fmt.Sprintf("%.1fs %s at currentTime %.2f, not resumed", e.At, e.Name, e.CurrentTime)
		}
		if d >= blipLimit {
			stalls = append(stalls, desc)
		} else {
			blips = append(blips, desc)
		}
	}
	for _, e := range l.HLSErrors {
		if e.At >= from && e.Details == "bufferStalledError" {
			stalls = append(stalls, e.String())
		}
	}
	return stalls, blips
}

// firstPlaying returns the page time of the first "playing" event.
func (l probeLog) firstPlaying() (float64, bool) {
	for _, e := range l.Events {
		if e.Name == "playing" {
			return e.At, true
		}
	}
	return 0, false
}

// player is the player page open in a fresh headless Chromium.
type player struct {
	t      *testing.T
	ctx    context.Context
	output *lockedBuffer // Chromium's stdout and stderr

	mu      sync.Mutex
	console []string // console messages and uncaught exceptions
}

// newPlayer starts a headless Chromium with a fresh profile and installs
// the probe for the pages it will open. Chromium is stopped when the test
// ends.
func newPlayer(t *testing.T) *player {
	t.Helper()
	p := &player{t: t, output: &lockedBuffer{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Containers often have a 64 MB /dev/shm, too small for Chromium.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.CombinedOutput(p.output),
		// A loaded CI machine can take many seconds to start Chromium.
		chromedp.WSURLReadTimeout(60 * time.Second),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	p.ctx = ctx
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for Chromium to exit
	})

	// The first action starts Chromium, which lives as long as the context
	// of that call: it must have no timeout of its own.
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: probeJS})
		return err
	}))
	require.NoError(t, err, "starting Chromium: %s", p.output.tail(2<<10))

	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m.String())
			p.mu.Unlock()
		}
	}()
	return p
}

// open loads url (a player page). On failure the page's state is logged
// when the test ends, before the servers opened since stop.
func (p *player) open(url string) {
	p.t.Helper()
	p.t.Cleanup(func() {
		if p.t.Failed() {
			p.dumpDiagnostics()
		}
	})
	_, err := run(p, 30*time.Second, chromedp.Navigate(url))
	require.NoError(p.t, err, "opening %s in Chromium", url)
}

// run runs action in the page within limit.
func run[T any](p *player, limit time.Duration, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, limit)
	defer cancel()
	return chromedp.Run(ctx, action)
}

// sample reads the player's state.
func (p *player) sample() sample {
	p.t.Helper()
	s, err := run(p, 5*time.Second, chromedp.Evaluate[sample](sampleJS))
	require.NoError(p.t, err, "reading the player state")
	return s
}

// probe returns what the probe recorded so far.
func (p *player) probe() probeLog {
	p.t.Helper()
	l, err := run(p, 5*time.Second, chromedp.Evaluate[probeLog](`window.__e2e`))
	require.NoError(p.t, err, "reading the probe")
	return l
}

// waitFor polls the player every 100ms until cond holds, failing the test
// after limit with the last state seen.
func (p *player) waitFor(what string, limit time.Duration, cond func(sample) bool) sample {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := p.sample()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			require.FailNow(p.t, "the player never got "+what, "within %v; last state %q (%s), mode %q, currentTime %.2f",
				limit, s.State, s.Message, s.Mode, s.CurrentTime)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// play waits for the page to be ready, presses Play, and waits for sound:
// state "live" with the playhead moving. It returns the page time of the
// first "playing" event.
func (p *player) play() float64 {
	p.t.Helper()
	s := p.waitFor(`state "ready"`, 20*time.Second, func(s sample) bool { return s.State == "ready" })
	require.Equal(p.t, "hls.js", s.Mode, "the page must play with hls.js")
	_, err := run(p, 5*time.Second, chromedp.Click(chromedp.ID("play")))
	require.NoError(p.t, err, "pressing Play")
	p.waitFor(`state "live" and a moving playhead`, 20*time.Second, func(s sample) bool {
		return s.State == "live" && !s.Paused && s.CurrentTime > 0
	})
	at, ok := p.probe().firstPlaying()
	require.True(p.t, ok, `"live" without a "playing" event`)
	return at
}

// sampleFor samples the player every second for d and returns the samples,
// the first taken at once.
func (p *player) sampleFor(d time.Duration) []sample {
	p.t.Helper()
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var out []sample
	for {
		s := p.sample()
		s.At = time.Since(start)
		out = append(out, s)
		if s.At >= d {
			return out
		}
		<-tick.C
	}
}

// resourcesJS lists the page's last requests with their timings, in
// milliseconds of page time: a held playlist request shows as a late
// responseStart, an idle player as a gap between requests.
const resourcesJS = `performance.getEntriesByType("resource").slice(-60).map(function (e) {
  return Math.round(e.startTime) + " → " + Math.round(e.responseStart) + " → " + Math.round(e.responseEnd) +
    " ms " + e.name.replace(/^[a-z]+:\/\/[^\/]+/, "");
})`

// dumpDiagnostics logs the probe, the page's requests and console,
// Chromium's output and the machine's load (a starved machine stalls
// players).
func (p *player) dumpDiagnostics() {
	if l, err := run(p, 5*time.Second, chromedp.Evaluate[probeLog](`window.__e2e`)); err == nil {
		p.t.Logf("media events: %+v", l.Events)
		for _, e := range l.HLSErrors {
			p.t.Logf("hls.js error: %s", e)
		}
	}
	if rs, err := run(p, 5*time.Second, chromedp.Evaluate[[]string](resourcesJS)); err == nil {
		p.t.Logf("page requests (start → first byte → end):\n%s", strings.Join(rs, "\n"))
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		p.t.Logf("load average: %s", strings.TrimSpace(string(load)))
	}
	p.mu.Lock()
	console := strings.Join(p.console, "\n")
	p.mu.Unlock()
	if console != "" {
		p.t.Logf("page console:\n%s", console)
	}
	if out := strings.TrimSpace(p.output.tail(4 << 10)); out != "" {
		p.t.Logf("chromium output (tail):\n%s", out)
	}
}

// latencyStats returns the median and the maximum of the samples' hls.js
// latencies, ignoring samples where hls.js reported none.
func latencyStats(samples []sample) (p50, maxL float64, n int) {
	var ls []float64
	for _, s := range samples {
		if s.Latency > 0 {
			ls = append(ls, s.Latency)
		}
	}
	if len(ls) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(ls)
	return ls[len(ls)/2], ls[len(ls)-1], len(ls)
}
