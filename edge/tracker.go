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
// ends. It never returns early on upstream errors: it retries.
func (t *tracker) run(ctx context.Context) {
	e := t.s.e
	first := true
	var cur *llhls.Playlist
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if time.Since(time.Unix(0, t.lastUsed.Load())) > e.cfg.idleAfter {
			return
		}
		query, timeout := "", e.cfg.fetchTimeout
		live := cur != nil && !cur.Ended
		if live && blocking(cur) {
			msn, part := nextPosition(cur)
			query = "_HLS_msn=" + strconv.FormatUint(msn, 10) + "&_HLS_part=" + strconv.Itoa(part)
			// The upstream holds up to 3 target durations.
			timeout = time.Duration(3*cur.TargetDuration)*time.Second + e.cfg.fetchTimeout
			if cur.PreloadHint != "" {
				go t.s.prefetch(cur.PreloadHint, true)
			}
		} else if live {
			// Plain HLS upstream: reload every half target duration.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(cur.TargetDuration) * time.Second / 2):
			}
		} else if cur != nil && cur.Ended {
			// The final playlist never changes; keep it until idle.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}

		res, err := e.up.get(ctx, "playlist", t.s.name, t.file, query, timeout)
		if first {
			first = false
			if err == nil {
				t.status.Store(int32(res.status))
			} else {
				t.status.Store(http.StatusBadGateway)
			}
			if err != nil || res.status != http.StatusOK {
				close(t.ready)
				return
			}
		}
		if err != nil || res.status != http.StatusOK {
			if err != nil {
				e.log.Debug("playlist fill failed", "name", t.s.name, "file", t.file, "err", err)
			}
			// 503 is a hold that timed out upstream: ask again at once.
			// Anything else: back off a little.
			if err != nil || res.status != http.StatusServiceUnavailable {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
			}
			continue
		}
		backoff = 100 * time.Millisecond
		pl, err := llhls.ParsePlaylist(res.body)
		if err != nil {
			e.log.Warn("malformed upstream playlist", "name", t.s.name, "file", t.file, "err", err)
			continue
		}
		if cur != nil && !newer(pl, cur) {
			continue
		}
		now := time.Now()
		cur = pl
		t.feed.Publish(llhls.NewSnapshot(pl, now.Add(-res.age)))
		if t.ready != nil {
			select {
			case <-t.ready:
			default:
				close(t.ready)
			}
		}
		t.s.prefetchNew(pl)
	}
}

// blocking reports whether the upstream offers blocking reloads.
func blocking(p *llhls.Playlist) bool { return p.PartTarget > 0 }

// nextPosition is the (msn, part) of the part after the newest one listed.
func nextPosition(p *llhls.Playlist) (uint64, int) {
	return p.NextMSN(), len(p.Parts)
}

// newer reports whether a moved the playlist forward from b (an upstream
// that failed over may briefly answer with an older one).
func newer(a, b *llhls.Playlist) bool {
	if a.Ended != b.Ended {
		return a.Ended
	}
	an, ap := nextPosition(a)
	bn, bp := nextPosition(b)
	return an > bn || (an == bn && ap > bp) || a.MediaSequence > b.MediaSequence
}
