package check

import (
	"context"
	"time"
)

// follow reloads the followed playlist until deadline as a low-latency
// player does: each reload is a blocking request for the part after the
// last one listed. A playlist that does not offer blocking reloads is
// reloaded every half target duration.
func (r *run) follow(ctx context.Context, deadline time.Time) {
	pl := r.first
	for ctx.Err() == nil && time.Now().Before(deadline) && !pl.ended {
		var rl reload
		if r.llStream {
			rl = r.reload(ctx, pl.next(), true)
		} else {
			sleep(ctx, max(r.td/2, 500*time.Millisecond))
			rl = r.reload(ctx, position{}, false)
		}
		if ctx.Err() != nil {
			return
		}
		r.reloads = append(r.reloads, rl)
		if rl.pl == nil {
			// A failed reload: do not hammer the server.
			sleep(ctx, max(r.pt, 200*time.Millisecond))
			continue
		}
		if rl.blocking && !rl.pl.has(rl.want) {
			// The server answered without what was asked for (a rule
			// failure, recorded); pace the retries.
			sleep(ctx, max(r.pt, 200*time.Millisecond))
		}
		pl = rl.pl
		r.live.publish(pl)
	}
}

// reload fetches the followed playlist once, blocking for want when asked.
func (r *run) reload(ctx context.Context, want position, blocking bool) reload {
	rq := request{url: r.primary(), kind: kindPlaylist}
	if blocking {
		rq = request{url: withQuery(r.primary(), blockingQuery(want, true, false)), kind: kindBlocking, timeout: r.holdTimeout()}
	}
	rl := reload{blocking: blocking, want: want}
	rl.res = r.c.do(ctx, rq)
	if rl.res.ok() {
		rl.pl, rl.perr = parseMedia(rl.res.body)
	}
	return rl
}
