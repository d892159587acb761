package edge

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/amphi-live/amphi/internal/evloop"
	"github.com/amphi-live/amphi/internal/llhls"
)

// stream is one broadcast as the edge serves it: the multivariant playlist,
// a tracker per media playlist that listeners ask for, and media from the
// shared cache. It implements llhls.Stream.
type stream struct {
	e    *Edge
	name string
	mv   *llhls.Object
	// primary is the first media playlist the multivariant lists.
	primary string
	// playlists are the media playlists the multivariant lists; only those
	// are followed (none listed: any .m3u8 name, for upstreams whose
	// index.m3u8 is itself a media playlist).
	playlists map[string]bool

	mu       sync.Mutex
	trackers map[string]*tracker
	missing  map[string]time.Time // media names the upstream answered 404 for, until when
}

// Multivariant implements llhls.Stream.
func (s *stream) Multivariant() *llhls.Object { return s.mv }

// Primary implements llhls.Stream.
func (s *stream) Primary() *llhls.Feed {
	if t := s.tracker(s.primary); t != nil {
		return t.feed
	}
	// No media playlist: a feed that never changes; waits end in 503.
	return llhls.NewFeed(llhls.NewSnapshot(&llhls.Playlist{}, time.Now()))
}

// Playlist implements llhls.Stream: it starts following file upstream on
// first use and waits (bounded) for its first version.
func (s *stream) Playlist(ctx context.Context, file string) *llhls.Feed {
	t := s.tracker(file)
	if t == nil {
		return nil
	}
	select {
	case <-t.ready:
	default:
		// Only the first listeners of a playlist wait for its first fill.
		evloop.Detach(ctx)
		timer := time.NewTimer(s.e.cfg.fetchTimeout + time.Second)
		select {
		case <-t.ready:
		case <-timer.C:
		}
		timer.Stop()
	}
	if st := t.status.Load(); st != 0 && st != http.StatusOK {
		return nil
	}
	return t.feed
}

// tracker returns the running tracker of file, starting one if needed.
func (s *stream) tracker(file string) *tracker {
	if file == "" || !strings.HasSuffix(file, ".m3u8") || file == "index.m3u8" {
		return nil
	}
	if len(s.playlists) > 0 && !s.playlists[file] {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.trackers[file]; ok {
		select {
		case <-t.ready:
			if t.status.Load() != http.StatusOK {
				// A failed first fetch is forgotten after the negative TTL.
				break
			}
			t.touch()
			return t
		default:
			t.touch()
			return t
		}
		if time.Since(time.Unix(0, t.lastUsed.Load())) < s.e.cfg.negativeTTL {
			return t
		}
	}
	t := newTracker(s, file)
	s.trackers[file] = t
	s.e.wg.Go(func() {
		t.run(s.e.ctx)
		if t.status.Load() != http.StatusOK {
			// Keep the failure for the negative TTL, then forget it.
			timer := time.NewTimer(s.e.cfg.negativeTTL)
			select {
			case <-s.e.ctx.Done():
			case <-timer.C:
			}
			timer.Stop()
		}
		s.mu.Lock()
		if s.trackers[file] == t {
			delete(s.trackers, file)
		}
		s.mu.Unlock()
		select {
		case <-t.ready:
		default:
			close(t.ready)
		}
	})
	return t
}

// Media implements llhls.Stream: a cache hit, or one collapsed upstream
// fetch that a departing client cannot cancel. The preload-hinted part is
// not fetched here: the tracker is already fetching it ahead.
func (s *stream) Media(ctx context.Context, file string) *llhls.Object {
	if o, live := s.e.cache.get(s.key(file)); o != nil {
		s.e.metrics.hits.Inc()
		if live {
			s.e.metrics.observeDelivery(o.Created)
		}
		return o
	}
	if s.Hinted(file) != nil {
		return nil
	}
	s.mu.Lock()
	until, gone := s.missing[file]
	s.mu.Unlock()
	if gone && time.Now().Before(until) {
		return nil
	}
	s.e.metrics.misses.Inc()
	evloop.Detach(ctx) // the fetch is waited for
	return s.fetch(file, false)
}

// Hinted implements llhls.Stream.
func (s *stream) Hinted(file string) *llhls.Feed {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.trackers {
		if t.feed.Current().Playlist().PreloadHint == file {
			return t.feed
		}
	}
	return nil
}

func (s *stream) key(file string) string { return s.name + "/" + file }

// fetch gets file through the collapsing fetch layer and returns it, or nil
// when the upstream does not have it. live marks a live-edge part.
func (s *stream) fetch(file string, live bool) *llhls.Object {
	ch := s.e.flight.DoChan(s.key(file), func() (any, error) {
		return s.fill(file, live)
	})
	select {
	case r := <-ch:
		if r.Shared {
			s.e.metrics.collapsed.Inc()
		}
		o, _ := r.Val.(*llhls.Object)
		if live && o != nil && r.Shared {
			// A listener's miss may have started the shared fill.
			s.e.cache.markLive(s.key(file))
		}
		return o
	case <-time.After(2 * s.e.cfg.fetchTimeout):
		return nil
	}
}

// fill runs detached from any client: it re-checks the cache, fetches, and
// stores immutable objects.
func (s *stream) fill(file string, live bool) (*llhls.Object, error) {
	if o, _ := s.e.cache.get(s.key(file)); o != nil {
		return o, nil
	}
	ctx, cancel := context.WithTimeout(s.e.ctx, s.e.cfg.fetchTimeout*4)
	defer cancel()
	res, err := s.e.up.get(ctx, "media", s.name, file, "", s.e.cfg.fetchTimeout*4)
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		if res.status == http.StatusNotFound {
			s.noteMissing(file)
		}
		return nil, nil
	}
	o := &llhls.Object{Data: res.body, ContentType: mediaType(file), Created: time.Now().Add(-res.age)}
	s.e.cache.add(s.key(file), o, live)
	return o, nil
}

// noteMissing remembers a name the upstream does not have for the negative
// TTL, so requests for made-up names cost the upstream one request each per
// TTL. The set is bounded.
func (s *stream) noteMissing(file string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if len(s.missing) >= 4096 {
		for k, until := range s.missing {
			if now.After(until) {
				delete(s.missing, k)
			}
		}
		if len(s.missing) >= 4096 {
			return
		}
	}
	s.missing[file] = now.Add(s.e.cfg.negativeTTL)
}

// prefetch fetches file ahead of listeners. hinted marks the preload hint:
// the upstream holds that request until the part exists. live marks a
// live-edge part.
func (s *stream) prefetch(file string, hinted, live bool) {
	if hinted {
		s.e.metrics.hintFetches.Inc()
	}
	s.fetch(file, live)
}

// prefetchNew fetches what pl announces and the cache lacks: the init
// section, the parts of the segment in progress (live) and those of the
// last complete segment, so the first listener to ask finds them cached.
func (s *stream) prefetchNew(pl *llhls.Playlist) {
	ahead := func(file string, live bool) {
		if o, _ := s.e.cache.get(s.key(file)); o == nil {
			go s.prefetch(file, false, live)
		}
	}
	if pl.MapURI != "" {
		ahead(pl.MapURI, false)
	}
	for _, p := range pl.Parts {
		ahead(p.URI, true)
	}
	if n := len(pl.Segments); n > 0 {
		for _, p := range pl.Segments[n-1].Parts {
			ahead(p.URI, false)
		}
	}
}

func mediaType(file string) string {
	switch {
	case strings.HasSuffix(file, ".ts"):
		return "video/mp2t"
	case strings.HasSuffix(file, ".aac"):
		return "audio/aac"
	case strings.HasSuffix(file, ".mp4"), strings.HasSuffix(file, ".m4s"), strings.HasSuffix(file, ".m4a"):
		return "audio/mp4"
	}
	return "application/octet-stream"
}

var _ llhls.Stream = (*stream)(nil)

// flightGroup is the collapsing fetch layer's seam; singleflight.Group is
// the production one.
type flightGroup interface {
	DoChan(key string, fn func() (any, error)) <-chan singleflight.Result
}
