package edge

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/amphi-live/amphi/internal/llhls"
)

// tracker follows one live media playlist upstream with blocking reloads
// and keeps the newest version in its feed, so that every listener's
// blocking request is answered from memory and woken the moment the
// upstream answers. It also fetches ahead the parts a playlist announces
// and the preload-hinted part, so listeners' part requests are hits.
type tracker struct {
	s    *stream
	file string
	feed *llhls.Feed

	ready    chan struct{} // closed after the first fetch, good or bad
	status   atomic.Int32  // HTTP status of the first fetch; 0 before it
	lastUsed atomic.Int64  // unix nanoseconds
}

func newTracker(s *stream, file string) *tracker {
	t := &tracker{
		s:     s,
		file:  file,
		feed:  llhls.NewFeed(llhls.NewSnapshot(&llhls.Playlist{}, time.Now())),
		ready: make(chan struct{}),
	}
	t.touch()
	return t
}

func (t *tracker) touch() { t.lastUsed.Store(time.Now().UnixNano()) }

// run follows the playlist until nobody asked for it for idleAfter, or ctx
// ends. Upstream trouble never ends it: it retries with backoff, and a
// blocking request that cannot make progress (an upstream that restarted
// and numbers from 0 again, a published-again broadcast) falls back to a
// plain reload that accepts a new session.
func (t *tracker) run(ctx context.Context) {
	e := t.s.e
	var cur *llhls.Playlist
	resync := true // the next fetch is a plain reload
	var backoff time.Duration
	sleep := func(d time.Duration) bool {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	// stalled backs off after an iteration that brought nothing newer.
	stalled := func() bool {
		backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
		return sleep(backoff)
	}
	for ctx.Err() == nil {
		if time.Since(time.Unix(0, t.lastUsed.Load())) > e.cfg.idleAfter {
			return
		}
		query, timeout := "", e.cfg.fetchTimeout
		switch {
		case cur == nil || resync:
		case cur.Ended:
			// The final playlist; look again now and then in case the
			// broadcast is published again under the same name.
			if !sleep(time.Duration(cur.TargetDuration) * time.Second) {
				return
			}
		case blocking(cur):
			msn, part := nextPosition(cur)
			query = "_HLS_msn=" + strconv.FormatUint(msn, 10) + "&_HLS_part=" + strconv.Itoa(part)
			// The upstream holds up to 3 target durations.
			timeout = time.Duration(3*cur.TargetDuration)*time.Second + e.cfg.fetchTimeout
			if hint := cur.PreloadHint; hint != "" {
				if o, _ := e.cache.get(t.s.key(hint)); o == nil {
					go t.s.prefetch(hint, true, true)
				}
			}
		default:
			// Plain HLS upstream: reload every half target duration.
			if !sleep(time.Duration(cur.TargetDuration) * time.Second / 2) {
				return
			}
		}

		started := time.Now()
		res, err := e.up.get(ctx, "playlist", t.s.name, t.file, query, timeout)
		if cur == nil && t.status.Load() == 0 {
			st := int32(http.StatusBadGateway)
			if err == nil {
				st = int32(res.status)
			}
			t.status.Store(st)
			if st != http.StatusOK {
				close(t.ready)
				return
			}
		}
		switch {
		case err != nil:
			e.log.Debug("playlist fill failed", "name", t.s.name, "file", t.file, "err", err)
			if !stalled() {
				return
			}
			continue
		case res.status == http.StatusServiceUnavailable && query != "" && time.Since(started) > time.Second:
			// A hold that timed out upstream: ask again at once.
			continue
		case res.status == http.StatusBadRequest && query != "":
			// Asked too far ahead: the upstream restarted or moved on.
			resync = true
			if !stalled() {
				return
			}
			continue
		case res.status != http.StatusOK:
			if !stalled() {
				return
			}
			continue
		}
		pl, err := llhls.ParsePlaylist(res.body)
		if err != nil {
			e.log.Warn("malformed upstream playlist", "name", t.s.name, "file", t.file, "err", err)
			if !stalled() {
				return
			}
			continue
		}
		if cur != nil && !newer(pl, cur) && !(resync && sameSessionChanged(pl, cur)) {
			if !stalled() {
				return
			}
			continue
		}
		backoff, resync = 0, false
		cur = pl
		t.feed.Publish(llhls.NewSnapshot(pl, time.Now().Add(-res.age)))
		select {
		case <-t.ready:
		default:
			close(t.ready)
		}
		t.s.prefetchNew(pl)
	}
}

// sameSessionChanged reports whether a plain reload shows a different
// playlist from b: a new session (new init section), or one that went back
// (an upstream that restarted).
func sameSessionChanged(a, b *llhls.Playlist) bool {
	an, ap := nextPosition(a)
	bn, bp := nextPosition(b)
	return a.MapURI != b.MapURI || an < bn || (an == bn && ap < bp) || a.Ended != b.Ended
}

// blocking reports whether the upstream offers blocking reloads.
func blocking(p *llhls.Playlist) bool { return p.PartTarget > 0 }

// nextPosition is the (msn, part) of the part after the newest one listed.
func nextPosition(p *llhls.Playlist) (uint64, int) {
	return p.NextMSN(), len(p.Parts)
}

// newer reports whether a moved the playlist forward from b (an upstream
// that failed over may briefly answer with an older one). A new session of
// the broadcast (a new init section) is always newer.
func newer(a, b *llhls.Playlist) bool {
	if a.MapURI != b.MapURI {
		return true
	}
	if a.Ended != b.Ended {
		return a.Ended
	}
	an, ap := nextPosition(a)
	bn, bp := nextPosition(b)
	return an > bn || (an == bn && ap > bp) || a.MediaSequence > b.MediaSequence
}
