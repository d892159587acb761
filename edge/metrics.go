package edge

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amphi-live/amphi/internal/llhls"
)

// metrics are the edge's Prometheus metrics, on a registry of its own.
type metrics struct {
	known    func(broadcast string) bool
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	// Resolved children of requests and listeners, so the hot path does
	// not hash label values on every request.
	requestsBy  [len(requestKinds)][600]atomic.Pointer[counterRef]
	listenersBy sync.Map // broadcast → prometheus.Gauge
	hits        prometheus.Counter
	misses      prometheus.Counter
	collapsed   prometheus.Counter
	hintFetches prometheus.Counter
	upstream    *prometheus.CounterVec
	held        prometheus.Gauge
	listeners   *prometheus.GaugeVec
	delivery    prometheus.Histogram
}

func newMetrics(e *Edge) *metrics {
	m := &metrics{
		known: e.known,
		reg:   prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amphi_edge_requests_total", Help: "Client requests by kind and status code.",
		}, []string{"kind", "code"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amphi_edge_cache_hits_total", Help: "Media requests answered from the cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amphi_edge_cache_misses_total", Help: "Media requests that needed an upstream fetch.",
		}),
		collapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amphi_edge_collapsed_total", Help: "Media requests that joined another request's upstream fetch.",
		}),
		hintFetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amphi_edge_hint_prefetches_total", Help: "Preload-hinted parts fetched ahead of listeners.",
		}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amphi_edge_upstream_requests_total", Help: "Requests sent upstream by kind.",
		}, []string{"kind"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amphi_edge_held_requests", Help: "Blocking playlist requests being held now.",
		}),
		listeners: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amphi_edge_active_listeners", Help: "Playlist requests in flight per broadcast (about one per LL-HLS listener).",
		}, []string{"broadcast"}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amphi_edge_part_delivery_delay_seconds",
			Help:    "Delay between a part's arrival from upstream and its delivery to a listener.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
	}
	m.reg.MustRegister(m.requests, m.hits, m.misses, m.collapsed, m.hintFetches, m.upstream, m.held, m.listeners, m.delivery,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "amphi_edge_cache_bytes", Help: "Bytes held in the media cache.",
		}, func() float64 { b, _ := e.cache.size(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "amphi_edge_cache_objects", Help: "Objects held in the media cache.",
		}, func() float64 { _, n := e.cache.size(); return float64(n) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// requestKind classifies /live/NAME/FILE requests for the metrics.
func requestKind(r *http.Request) (kind, broadcast string) {
	rest := strings.TrimPrefix(r.URL.Path, "/live/")
	broadcast, file, _ := strings.Cut(rest, "/")
	switch {
	case file == "":
		return "page", broadcast
	case file == "index.m3u8":
		return "multivariant", broadcast
	case strings.HasSuffix(file, ".m3u8"):
		if strings.Contains(r.URL.RawQuery, "_HLS_msn=") {
			return "blocking_playlist", broadcast
		}
		return "playlist", broadcast
	}
	return "media", broadcast
}

// instrument counts requests by kind and status, and tracks held requests
// and listeners per broadcast.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, broadcast := requestKind(r)
		sw := statusWriters.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w, code: http.StatusOK}
		playlist := kind == "playlist" || kind == "blocking_playlist"
		if kind == "blocking_playlist" {
			m.held.Inc()
		}
		var g prometheus.Gauge
		// Only broadcasts being served get a label: made-up names must not
		// grow the label set.
		if playlist && llhls.ValidName(broadcast) && m.known(broadcast) {
			g = m.listenerGauge(broadcast)
			g.Inc()
		}
		h.ServeHTTP(sw, r)
		if kind == "blocking_playlist" {
			m.held.Dec()
		}
		if g != nil {
			g.Dec()
		}
		m.requestCounter(kind, sw.code).Inc()
		// A handler that panicked never gets here, and its statusWriter is
		// left to the collector.
		*sw = statusWriter{}
		statusWriters.Put(sw)
	})
}

// requestKinds are the kinds requestKind returns.
var requestKinds = [...]string{"page", "multivariant", "playlist", "blocking_playlist", "media"}

type counterRef struct{ prometheus.Counter }

func (m *metrics) requestCounter(kind string, code int) prometheus.Counter {
	k := slices.Index(requestKinds[:], kind)
	if k < 0 || code < 0 || code >= len(m.requestsBy[0]) {
		return m.requests.WithLabelValues(kind, strconv.Itoa(code))
	}
	if c := m.requestsBy[k][code].Load(); c != nil {
		return c.Counter
	}
	c := &counterRef{m.requests.WithLabelValues(kind, strconv.Itoa(code))}
	m.requestsBy[k][code].Store(c)
	return c.Counter
}

// listenerGauge is only called for broadcasts being served, so the map is
// bounded like the label set.
func (m *metrics) listenerGauge(broadcast string) prometheus.Gauge {
	if g, ok := m.listenersBy.Load(broadcast); ok {
		return g.(prometheus.Gauge)
	}
	g := m.listeners.WithLabelValues(broadcast)
	m.listenersBy.Store(broadcast, g)
	return g
}

// observeDelivery records a part served created ago.
func (m *metrics) observeDelivery(created time.Time) {
	if !created.IsZero() {
		m.delivery.Observe(time.Since(created).Seconds())
	}
}

// statusWriters keeps statusWriters for reuse: one per request was a
// fifth of the edge's garbage. A handler does not keep its ResponseWriter
// after it returns (net/http forbids it).
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (per-write
// deadlines, flushing).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
