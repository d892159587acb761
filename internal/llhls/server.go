package llhls

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Object is an immutable media object (init section, part or segment) or a
// multivariant playlist.
type Object struct {
	Data        []byte
	ContentType string
	// Created is when the object entered this tier; caches derive Age from it.
	Created time.Time

	gzOnce sync.Once
	gz     []byte
	// heads are its header blocks for the fast path (WritePrerendered):
	// [0] plain, [1] gzip-compressed (multivariant playlists only).
	heads [2]fieldCache
}

// gzipped returns Data gzip-compressed, computed once.
func (o *Object) gzipped() []byte {
	o.gzOnce.Do(func() { o.gz = gzipBytes(o.Data) })
	return o.gz
}

// Stream is one presentation as the serving core sees it. The origin
// implements it over its segmenter, the edge over its upstream tracker.
type Stream interface {
	// Multivariant returns the multivariant playlist, nil until it is known.
	Multivariant() *Object
	// Primary is the feed whose updates announce new content; waits for the
	// multivariant playlist and for a first segment watch it.
	Primary() *Feed
	// Playlist returns the feed of the media playlist named file, or nil.
	// ctx is the request's: an implementation that may block calls
	// evloop.Detach(ctx) first (see package evloop).
	Playlist(ctx context.Context, file string) *Feed
	// Media returns the media object named file, or nil when absent; ctx
	// as for Playlist.
	Media(ctx context.Context, file string) *Object
	// Hinted returns the feed whose preload hint (or a part just ahead of it)
	// is file, or nil when file is not an announced future part.
	Hinted(file string) *Feed
}

// Catalog finds streams by broadcast name.
type Catalog interface {
	// Stream returns the stream, or nil; ctx as for Stream.Playlist.
	Stream(ctx context.Context, name string) Stream
}

// Config configures a Handler.
type Config struct {
	// Catalog resolves broadcast names. Required.
	Catalog Catalog
	// DefaultTargetDuration sets the TTLs of answers about unknown streams.
	// It defaults to 2s.
	DefaultTargetDuration time.Duration
	// HoldFactor caps every hold at HoldFactor × target duration, after
	// which the request ends in 503. It defaults to 3.
	HoldFactor int
	// WriteTimeout bounds writing one response once it is ready (there is no
	// global write timeout, since holds are long). It defaults to 10s.
	WriteTimeout time.Duration
	// SetAge adds an Age header derived from Object.Created, as caches must.
	SetAge bool
	// Page serves /live/NAME/ (the player page); nil answers 404.
	Page http.Handler
	// Stop, when closed, releases every held request with 503 so that
	// clients retry elsewhere during a graceful shutdown. Optional.
	Stop <-chan struct{}
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Handler serves /live/NAME/FILE with the LL-HLS rules of the project.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	holds *holds
}

// NewHandler validates cfg, applies its defaults and returns a Handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Catalog == nil {
		return nil, fmt.Errorf("llhls: Config.Catalog is required")
	}
	if cfg.DefaultTargetDuration <= 0 {
		cfg.DefaultTargetDuration = 2 * time.Second
	}
	if cfg.HoldFactor <= 0 {
		cfg.HoldFactor = 3
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, log: cfg.Logger, holds: newHolds(cfg.Stop)}, nil
}

// Register mounts the handler on mux under /live/.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("/live/", h)
}

// ServeHTTP implements http.Handler.
//
// Every answer carries the CORS fields: the common ones in their
// pre-rendered header block, the others through setCORS.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		setCORS(w.Header())
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		httpError(w, http.StatusMethodNotAllowed, nil, "method not allowed")
		return
	}

	name, file, ok := splitPath(r.URL.Path)
	if !ok {
		httpError(w, http.StatusNotFound, cacheFor(h.cfg.DefaultTargetDuration), "not found")
		return
	}
	if file == "" {
		if h.cfg.Page != nil && h.cfg.Catalog.Stream(r.Context(), name) != nil {
			setCORS(w.Header())
			h.cfg.Page.ServeHTTP(w, r)
			return
		}
		httpError(w, http.StatusNotFound, cacheFor(h.cfg.DefaultTargetDuration), "unknown stream "+name)
		return
	}

	st := h.cfg.Catalog.Stream(r.Context(), name)
	isPlaylist := strings.HasSuffix(file, ".m3u8")
	if st == nil {
		d, err := ParseDirectives(r.URL.RawQuery)
		ttl := h.cfg.DefaultTargetDuration
		if err == nil && d.HasMSN {
			ttl *= 4
		}
		httpError(w, http.StatusNotFound, cacheFor(ttl), "unknown stream "+name)
		return
	}

	switch {
	case file == "index.m3u8":
		h.serveMultivariant(w, r, st)
	case isPlaylist:
		h.serveMediaPlaylist(w, r, st, file)
	default:
		h.serveMedia(w, r, st, file)
	}
}

// splitPath splits /live/NAME/FILE. FILE is empty for /live/NAME/.
func splitPath(p string) (name, file string, ok bool) {
	rest, found := strings.CutPrefix(p, "/live/")
	if !found {
		return "", "", false
	}
	name, file, found = strings.Cut(rest, "/")
	if !found || !ValidName(name) || strings.Contains(file, "/") {
		return "", "", false
	}
	if file != "" && (file[0] == '.' || strings.ContainsAny(file, "\\\x00")) {
		return "", "", false
	}
	return name, file, true
}

// ValidName reports whether name is a valid broadcast name: [a-z0-9-]{1,64}.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func (h *Handler) holdLimit(td time.Duration) time.Duration {
	return time.Duration(h.cfg.HoldFactor) * td
}

type holdError string

func (e holdError) Error() string { return string(e) }

const (
	errHoldExpired  = holdError("hold expired")
	errShuttingDown = holdError("server shutting down")
)

func (h *Handler) serveMultivariant(w http.ResponseWriter, r *http.Request, st Stream) {
	gz := wantsGzip(r) // before the hold, while the request is in cache
	feed := st.Primary()
	td := feed.Current().TargetDuration()
	if td == 0 {
		td = h.cfg.DefaultTargetDuration
	}
	if st.Multivariant() == nil {
		_, err := waitFor(r.Context(), h.holds, feed, h.holdLimit(td), func(*Snapshot) bool { return st.Multivariant() != nil })
		if err != nil {
			h.holdFailed(w, r, err, td, "the stream has not produced its first segment yet")
			return
		}
	}
	obj := st.Multivariant()
	// The multivariant playlist only changes between broadcasts.
	h.writePlaylist(w, r, gz, func(gz bool) ([]byte, error) {
		if gz {
			return obj.gzipped(), nil
		}
		return obj.Data, nil
	}, cacheFor(td), obj.Created, &obj.heads[b2i(gz)])
}

func (h *Handler) serveMediaPlaylist(w http.ResponseWriter, r *http.Request, st Stream, file string) {
	gz := wantsGzip(r) // before the hold, while the request is in cache
	feed := st.Playlist(r.Context(), file)
	d, derr := ParseDirectives(r.URL.RawQuery)
	td := h.cfg.DefaultTargetDuration
	if feed != nil {
		if t := feed.Current().TargetDuration(); t > 0 {
			td = t
		}
	}
	if derr != nil {
		httpError(w, http.StatusBadRequest, cacheFor(td), derr.Error())
		return
	}
	if feed == nil {
		ttl := td
		if d.HasMSN {
			ttl = 4 * td
		}
		httpError(w, http.StatusNotFound, cacheFor(ttl), "unknown playlist "+file)
		return
	}

	var tooFar bool
	s, err := waitFor(r.Context(), h.holds, feed, h.holdLimit(td), func(s *Snapshot) bool {
		if !s.HasContent() && !s.Playlist().Ended {
			return false
		}
		ok, far := s.Check(d)
		if far {
			tooFar = true
			return true
		}
		return ok
	})
	if err != nil {
		h.holdFailed(w, r, err, td, "the requested part did not appear in time")
		return
	}
	if tooFar {
		lastMSN, lastPart, _ := s.LastPosition()
		httpError(w, http.StatusBadRequest, cacheFor(td), fmt.Sprintf(
			"_HLS_msn=%d _HLS_part=%d is too far ahead of the live edge (last segment %d, last part %d)",
			d.MSN, d.Part, lastMSN, lastPart))
		return
	}

	ended := s.Playlist().Ended
	// A blocking answer names one version for good, and so does the final
	// playlist: both are cached long.
	cc, long := cacheFor(td/2), ended || d.HasMSN
	if long {
		cc = cacheFor(6 * td)
	}
	delta := d.Skip && !ended
	h.writePlaylist(w, r, gz, func(gz bool) ([]byte, error) { return s.Bytes(delta, gz) }, cc, s.Created(),
		s.headsFor(gz, long))
}

// writePlaylist writes the playlist render returns, gzip-compressed when gz
// is set; fc keeps its header block for the fast path.
func (h *Handler) writePlaylist(w http.ResponseWriter, r *http.Request, gz bool,
	render func(gz bool) ([]byte, error), cc []string, created time.Time, fc *fieldCache,
) {
	body, err := render(gz)
	if err != nil {
		h.log.Error("rendering playlist", "path", r.URL.Path, "err", err)
		httpError(w, http.StatusInternalServerError, nil, "rendering playlist failed")
		return
	}
	h.writeOK(w, r, fieldSpec{contentType: contentTypePlaylist[0], cc: cc[0],
		age: h.ageOf(created), gzip: gz, playlist: true}, fc, body)
}

// writeOK sends a 200 answer with the fields of spec and body: over h1 in
// one piece with the header block kept in fc, else field by field.
func (h *Handler) writeOK(w http.ResponseWriter, r *http.Request, spec fieldSpec, fc *fieldCache, body []byte) {
	if pw := asPrerenderer(w); pw != nil {
		_ = pw.WritePrerendered(http.StatusOK, fc.get(spec), body)
		return
	}
	hd := w.Header()
	spec.set(hd)
	hd["Content-Length"] = []string{itoa(len(body))}
	h.setWriteDeadline(w)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// ageOf is the Age of an answer about something that entered this tier at
// created, in seconds, or -1 when none is sent.
func (h *Handler) ageOf(created time.Time) int64 {
	if !h.cfg.SetAge || created.IsZero() {
		return -1
	}
	return max(0, int64(h.cfg.Now().Sub(created)/time.Second))
}

func (h *Handler) serveMedia(w http.ResponseWriter, r *http.Request, st Stream, file string) {
	obj := st.Media(r.Context(), file)
	if obj == nil {
		var ok bool
		if obj, ok = h.awaitHinted(w, r, st, file); !ok {
			return
		}
	}
	spec := fieldSpec{contentType: obj.ContentType, cc: cacheImmutable[0], age: h.ageOf(obj.Created)}
	if r.Header.Get("Range") != "" {
		// ServeContent answers Range (and its conditionals); a zero modtime
		// sends no Last-Modified, since URIs are immutable anyway.
		spec.set(w.Header())
		h.setWriteDeadline(w)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(obj.Data))
		return
	}
	spec.ranges = true
	h.writeOK(w, r, spec, &obj.heads[0], obj.Data)
}

// awaitHinted holds a request for the preload-hinted part until the part is
// complete (§6.2.6); a 404 there makes players treat the part as a gap. It
// writes the error response itself and returns ok false when there is none.
func (h *Handler) awaitHinted(w http.ResponseWriter, r *http.Request, st Stream, file string) (*Object, bool) {
	feed := st.Hinted(file)
	if feed == nil {
		// The hint may have moved on between the two lookups; the part is
		// stored before the playlist that announces it is published.
		if obj := st.Media(r.Context(), file); obj != nil {
			return obj, true
		}
		httpError(w, http.StatusNotFound, cacheFor(h.cfg.DefaultTargetDuration), "no such media object "+file)
		return nil, false
	}
	td := feed.Current().TargetDuration()
	if td == 0 {
		td = h.cfg.DefaultTargetDuration
	}
	var obj *Object
	_, err := waitFor(r.Context(), h.holds, feed, h.holdLimit(td), func(s *Snapshot) bool {
		obj = st.Media(r.Context(), file)
		return obj != nil || s.Playlist().Ended || st.Hinted(file) == nil
	})
	if err != nil {
		h.holdFailed(w, r, err, td, "the hinted part did not appear in time")
		return nil, false
	}
	if obj == nil {
		httpError(w, http.StatusNotFound, cacheFor(td), "hinted part "+file+" was never produced")
		return nil, false
	}
	return obj, true
}

func (h *Handler) holdFailed(w http.ResponseWriter, r *http.Request, err error, td time.Duration, why string) {
	if r.Context().Err() != nil {
		// The client left; nobody reads this. Logged as 499 by convention.
		h.log.Debug("client left during hold", "path", r.URL.Path, "status", 499)
		return
	}
	if err == errShuttingDown {
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, noStore, "server shutting down; retry")
		return
	}
	w.Header().Set("Retry-After", itoa(max(1, int(td/time.Second))))
	httpError(w, http.StatusServiceUnavailable, noStore, why)
}

// setWriteDeadline bounds writing the answer. Answers over h1's fast path
// skip it: h1 bounds each answer's writes itself.
func (h *Handler) setWriteDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
}
