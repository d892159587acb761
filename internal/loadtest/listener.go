package loadtest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/amphi-live/amphi/internal/evloop"
)

// errStatus is a non-2xx answer (already counted by status).
var errStatus = errors.New("HTTP error status")

// errHold is a blocking playlist request answered without the part it named.
var errHold = errors.New("blocking playlist request answered without the requested part")

// listener is one simulated player. Its fields belong to its goroutine (or
// loop task); the hint fetcher only touches the hintFetcher.
type listener struct {
	r  *runner
	g  *group
	be Behaviour
	c  *conn        // playlists; media too except for hint
	mc *conn        // media (hint: a second connection, as AVPlayer holds)
	t  *evloop.Task // the event-loop task it runs as; nil: its own goroutine

	pl   mediaPlaylist
	body []byte
	path []byte
	buf  playerBuffer

	joined     time.Time
	started    bool
	ended      bool
	endedAt    time.Time
	lowLatency bool      // follows parts (ll, hint on a stream with parts)
	lastReload time.Time // legacy
	lastStatus int       // of the last answer
	rejoin     bool      // start over from a plain playlist (after a 400)
	startPos   int64     // media time playback starts at
	next       partPos   // ll, hint: the next part to get
	nextSeg    int64     // legacy: the next segment to get
	mapURI     []byte    // init section fetched
	untimed    bool      // playlists carry no PROGRAM-DATE-TIME
	anchor     struct{ msn, start int64 }
	anchored   bool
	backoff    time.Duration
	timer      *time.Timer
	reported   struct {
		stalls  int64
		stalled time.Duration
	}
	hint *hintFetcher
}

func (l *listener) run(ctx context.Context) {
	l.joined = time.Now()
	l.g.listeners.Add(1)
	if l.t != nil {
		// The loop wakes its tasks when ctx is done, and only its tasks
		// may close their connections: this one closes the playlist
		// connection, a hint fetcher its media connection.
		defer l.c.close()
	} else {
		l.timer = time.NewTimer(time.Hour)
		l.timer.Stop()
		stop := context.AfterFunc(ctx, func() {
			l.c.close()
			if l.mc != l.c {
				l.mc.close()
			}
		})
		defer stop()
	}
	if l.be == Hint {
		l.hint = &hintFetcher{l: l}
		l.hint.start()
		defer l.hint.quit()
	}
	defer l.finish()

	for ctx.Err() == nil && !l.joinOnce(ctx) {
		l.pause(ctx)
	}
	for ctx.Err() == nil && !l.ended {
		var err error
		switch {
		case l.rejoin:
			l.g.resyncs.Add(1)
			if l.joinOnce(ctx) {
				l.rejoin = false
			} else {
				err = errStatus
			}
		case !l.lowLatency:
			err = l.legacyStep(ctx)
		case l.be == Hint:
			err = l.hintStep(ctx)
		default:
			err = l.llStep(ctx)
		}
		if err != nil {
			l.pause(ctx)
		} else {
			l.backoff = 0
		}
	}
}

// finish settles the player model at the end of the run.
func (l *listener) finish() {
	now := time.Now()
	if end := l.r.end; now.After(end) {
		now = end
	}
	if l.ended {
		now = l.endedAt // the broadcast is over: silence is not a stall
	}
	l.buf.advance(now.UnixNano())
	l.syncStalls()
	if !l.started {
		// Never heard anything: all of its time counts as stalled.
		l.g.stalledNs.Add(int64(now.Sub(l.joined)))
	}
	l.g.listenedNs.Add(int64(now.Sub(l.joined)))
}

func (l *listener) syncStalls() {
	if d := l.buf.stalls - l.reported.stalls; d > 0 {
		l.g.stalls.Add(d)
	}
	if d := l.buf.stalled - l.reported.stalled; d > 0 {
		l.g.stalledNs.Add(int64(d))
	}
	l.reported.stalls, l.reported.stalled = l.buf.stalls, l.buf.stalled
}

// pause waits after a failure, doubling from one part target up to one
// target duration.
func (l *listener) pause(ctx context.Context) {
	lo := max(l.r.stream.partTarget, 100*time.Millisecond)
	hi := max(l.r.stream.targetDuration, lo)
	if l.backoff == 0 {
		l.backoff = lo
	} else {
		l.backoff = min(2*l.backoff, hi)
	}
	l.sleep(ctx, l.backoff)
}

func (l *listener) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	if l.t != nil {
		l.t.Sleep(d)
		return
	}
	l.timer.Reset(d)
	select {
	case <-ctx.Done():
		l.timer.Stop()
	case <-l.timer.C:
	}
}

func (l *listener) deadline() time.Time {
	d := time.Now().Add(l.r.timeout)
	if d.After(l.r.end) {
		return l.r.end
	}
	return d
}

// fail counts an error unless the run is over (requests cut by the end are
// not failures).
func (l *listener) fail(ctx context.Context, err error) {
	if ctx.Err() != nil || !time.Now().Before(l.r.end) || errors.Is(err, errClosed) || errors.Is(err, errStatus) {
		return
	}
	l.g.errs[classify(err)].Add(1)
}

// count records a completed request and judges its status. The hint
// fetcher calls it too: it must only touch atomics.
func (l *listener) count(ctx context.Context, kind reqKind, res result) error {
	if ctx.Err() != nil || res.held.After(l.r.end) {
		return errClosed
	}
	l.g.reqs[kind].Add(1)
	l.g.bytes.Add(res.n)
	if res.status < 200 || res.status > 299 {
		l.g.status[min(res.status, len(l.g.status)-1)].Add(1)
		return errStatus
	}
	return nil
}

// fetchPlaylist loads the media playlist into l.pl. kind is kindPlaylist,
// or kindBlocking with at naming the part (withPart) or segment to wait for.
func (l *listener) fetchPlaylist(ctx context.Context, kind reqKind, at partPos, withPart, skip bool) error {
	l.path = append(l.path[:0], l.r.playlistPath...)
	if kind == kindBlocking {
		if bytes.IndexByte(l.path, '?') >= 0 {
			l.path = append(l.path, '&')
		} else {
			l.path = append(l.path, '?')
		}
		l.path = append(l.path, "_HLS_msn="...)
		l.path = strconv.AppendInt(l.path, at.msn, 10)
		if withPart {
			l.path = append(l.path, "&_HLS_part="...)
			l.path = strconv.AppendInt(l.path, int64(at.idx), 10)
		}
		if skip {
			l.path = append(l.path, "&_HLS_skip=YES"...)
		}
	}
	res, err := l.c.get(l.deadline(), l.path, &l.body)
	if err != nil {
		l.fail(ctx, err)
		return err
	}
	l.lastStatus = res.status
	if err := l.count(ctx, kind, res); err != nil {
		return err
	}
	if kind == kindBlocking {
		l.g.wait.Record(res.held.Sub(res.sent))
	}
	if err := l.pl.parse(l.body); err != nil {
		if errors.Is(err, errMultivariant) {
			err = &malformedError{"a multivariant playlist where a media playlist was expected"}
		}
		l.fail(ctx, err)
		return err
	}
	l.timePlaylist(res.held)
	l.buf.advance(res.held.UnixNano())
	l.syncStalls()
	if l.pl.ended && !l.ended {
		l.ended, l.endedAt = true, res.held
		l.g.ended.Add(1)
	}
	if kind == kindBlocking && !l.pl.ended && !l.pl.has(at) {
		l.fail(ctx, errHold)
		return errHold
	}
	return nil
}

// blockingFailed handles a failed blocking playlist request: a 400 (asked
// beyond what the server has: its sequence numbers went back, or it
// restarted) makes the listener start over; errHold lets the caller use
// the playlist and then pause, so a server that answers early is not
// hammered. It reports whether the playlist can still be used.
func (l *listener) blockingFailed(err error) bool {
	if errors.Is(err, errStatus) && l.lastStatus == 400 {
		l.rejoin = true
	}
	return errors.Is(err, errHold)
}

// timePlaylist gives a playlist without PROGRAM-DATE-TIME a timeline: the
// live edge of the first one is "now", later ones follow from segment
// numbers. Latency is not measured on such a timeline.
func (l *listener) timePlaylist(now time.Time) {
	pl := &l.pl
	if !pl.timed && len(pl.segs) > 0 {
		l.untimed = true
		if !l.anchored || !pl.applyAnchor(l.anchor.msn, l.anchor.start) {
			last := &pl.segs[len(pl.segs)-1]
			pl.applyAnchor(last.msn, now.UnixNano()-int64(last.dur))
		}
	}
	if len(pl.segs) > 0 {
		last := &pl.segs[len(pl.segs)-1]
		l.anchor.msn, l.anchor.start, l.anchored = last.msn, last.start, true
	}
}

// fetchMedia gets one part, segment or init section and drops its bytes.
func (l *listener) fetchMedia(ctx context.Context, c *conn, kind reqKind, uri []byte) (result, error) {
	var err error
	if l.path, err = l.r.resolve.appendPath(l.path[:0], uri); err != nil {
		l.fail(ctx, err)
		return result{}, err
	}
	res, err := c.get(l.deadline(), l.path, nil)
	if err != nil {
		l.fail(ctx, err)
		return res, err
	}
	return res, l.count(ctx, kind, res)
}

// fetchInit gets the init section when the playlist names a new one.
func (l *listener) fetchInit(ctx context.Context) error {
	if l.pl.mapURI == nil || bytes.Equal(l.pl.mapURI, l.mapURI) {
		return nil
	}
	if _, err := l.fetchMedia(ctx, l.mc, kindInit, l.pl.mapURI); err != nil {
		return err
	}
	l.mapURI = append(l.mapURI[:0], l.pl.mapURI...)
	return nil
}

// gotMedia records media [s, e) held at held. Catch-up media (listed
// before the listener asked for it: at join and after a resync) is left out
// of the delivery latency.
func (l *listener) gotMedia(s, e int64, held time.Time, catchUp bool) {
	now := held.UnixNano()
	l.buf.add(now, s, e)
	l.maybeStart(held, !catchUp)
	if !catchUp && !l.untimed {
		l.g.latency.Record(time.Duration(now - e))
		if now >= l.r.rampEnd {
			l.g.steady.Record(time.Duration(now - e))
		}
	}
	l.syncStalls()
}

// maybeStart starts playback once a part target (legacy: half a target
// duration) is buffered from the start position, as a player waits for
// some data before it plays; force starts it with whatever is there (the
// catch-up is over, or live media arrived).
func (l *listener) maybeStart(now time.Time, force bool) {
	if l.started {
		return
	}
	at, run := l.buf.firstFrom(l.startPos)
	need := l.pl.targetDuration / 2
	if l.lowLatency {
		need = l.pl.partTarget
	}
	if run <= 0 || (!force && run < need) {
		return
	}
	l.started = true
	l.buf.start(now.UnixNano(), at)
	l.g.playing.Add(1)
	l.g.ttfa.Record(now.Sub(l.joined))
}

// joinOnce does what a player does on start: the multivariant playlist
// (when the URL is one), the media playlist, the init section, and the
// media from hold-back behind live to the live edge. It reports whether
// the listener has a position to continue from.
func (l *listener) joinOnce(ctx context.Context) bool {
	if l.r.multivariantPath != "" {
		l.path = append(l.path[:0], l.r.multivariantPath...)
		res, err := l.c.get(l.deadline(), l.path, nil)
		if err != nil {
			l.fail(ctx, err)
			return false
		}
		if l.count(ctx, kindMultivariant, res) != nil {
			return false
		}
	}
	l.lastReload = time.Now()
	if l.fetchPlaylist(ctx, kindPlaylist, partPos{}, false, false) != nil {
		return false
	}
	// Parts without blocking reload are followed like plain HLS.
	l.lowLatency = l.be != Legacy && l.pl.partTarget > 0 && l.pl.canBlockReload
	if !l.seek() {
		return false
	}
	if l.fetchInit(ctx) != nil {
		return false
	}
	l.catchUp(ctx)
	l.maybeStart(time.Now(), true)
	return true
}

// seek picks where to start in l.pl: hold-back behind live, on a part
// boundary (ll, hint) or a segment boundary (legacy). It reports false when
// the playlist has nothing to start from yet.
func (l *listener) seek() bool {
	pl := &l.pl
	if l.lowLatency {
		hb := pl.partHoldBack
		if hb == 0 {
			hb = 3 * pl.partTarget
		}
		pos := pl.liveEdge(true) - int64(hb)
		for i := range pl.segs {
			s := &pl.segs[i]
			for j := s.p0; j < s.p1; j++ {
				if pl.parts[j].end() > pos {
					l.next, l.startPos = partPos{msn: s.msn, idx: j - s.p0}, max(pos, pl.parts[j].start)
					return true
				}
			}
			if s.complete && s.end() > pos { // the start lies in a segment listed without parts
				l.next, l.startPos = partPos{msn: s.msn}, max(pos, s.start)
				return true
			}
		}
		return false
	}
	hb := pl.holdBack
	if hb == 0 {
		hb = 3 * pl.targetDuration
	}
	pos := pl.liveEdge(false) - int64(hb)
	for i := range pl.segs {
		if s := &pl.segs[i]; s.complete && s.end() > pos {
			l.nextSeg, l.startPos = s.msn, max(pos, s.start)
			return true
		}
	}
	return false
}

// catchUp fetches what is listed from the start position on. A failure
// is retried by the next round.
func (l *listener) catchUp(ctx context.Context) {
	if l.lowLatency {
		_ = l.fetchParts(ctx, l.mc, true)
	} else {
		_ = l.fetchSegments(ctx, true)
	}
}

// skippable reports whether a failed media request should be given up on
// (a gap, as players do with a 404) rather than retried next round.
func skippable(err error, res result) bool {
	return errors.Is(err, errStatus) && (res.status == 404 || res.status == 410)
}

// resync rejoins live after falling out of the playlist's window.
func (l *listener) resync(ctx context.Context) {
	l.g.resyncs.Add(1)
	if l.seek() {
		l.catchUp(ctx)
	}
}

// fetchParts gets every listed part from l.next on, in order. A segment
// listed without parts is fetched whole.
func (l *listener) fetchParts(ctx context.Context, c *conn, catchUp bool) error {
	pl := &l.pl
	for ctx.Err() == nil {
		s := pl.seg(l.next.msn)
		if s == nil {
			if len(pl.segs) > 0 && l.next.msn < pl.segs[0].msn {
				l.resync(ctx)
			}
			return nil
		}
		n := s.p1 - s.p0
		if n == 0 && s.complete {
			res, err := l.fetchMedia(ctx, c, kindSegment, s.uri)
			if err == nil {
				l.gotMedia(s.start, s.end(), res.held, catchUp)
			} else if !skippable(err, res) {
				return err
			}
			l.next = partPos{msn: s.msn + 1}
			continue
		}
		if l.next.idx >= n {
			if !s.complete {
				return nil
			}
			l.next = partPos{msn: s.msn + 1}
			continue
		}
		p := &pl.parts[s.p0+l.next.idx]
		res, err := l.fetchMedia(ctx, c, kindPart, p.uri)
		if err == nil {
			l.gotMedia(p.start, p.end(), res.held, catchUp)
		} else if !skippable(err, res) {
			return err
		}
		l.next.idx++
	}
	return nil
}

// fetchSegments gets every complete segment from l.nextSeg on.
func (l *listener) fetchSegments(ctx context.Context, catchUp bool) error {
	pl := &l.pl
	for ctx.Err() == nil {
		s := pl.seg(l.nextSeg)
		if s == nil {
			if len(pl.segs) > 0 && l.nextSeg < pl.segs[0].msn {
				l.resync(ctx)
			}
			return nil
		}
		if !s.complete {
			return nil
		}
		res, err := l.fetchMedia(ctx, l.mc, kindSegment, s.uri)
		if err == nil {
			l.gotMedia(s.start, s.end(), res.held, catchUp)
		} else if !skippable(err, res) {
			return err
		}
		l.nextSeg++
	}
	return nil
}

// llStep is one round of hls.js in low-latency mode: block for the next
// part, then fetch what is new.
func (l *listener) llStep(ctx context.Context) error {
	skip := l.pl.canSkipUntil > 0
	err := l.fetchPlaylist(ctx, kindBlocking, l.next, true, skip)
	if err != nil && !l.blockingFailed(err) {
		return err
	}
	if err := l.fetchInit(ctx); err != nil {
		return err
	}
	if err := l.fetchParts(ctx, l.mc, false); err != nil {
		return err
	}
	return err
}

// legacyStep is one reload of plain HLS, a target duration after the last.
func (l *listener) legacyStep(ctx context.Context) error {
	td := l.pl.targetDuration
	if td == 0 { // the last playlist did not parse
		td = l.r.stream.targetDuration
	}
	td = max(td, 100*time.Millisecond)
	l.sleep(ctx, time.Until(l.lastReload.Add(td)))
	if ctx.Err() != nil {
		return nil
	}
	l.lastReload = time.Now()
	if err := l.fetchPlaylist(ctx, kindPlaylist, partPos{}, false, false); err != nil {
		return err
	}
	if err := l.fetchInit(ctx); err != nil {
		return err
	}
	return l.fetchSegments(ctx, false)
}

// hintStep is one round of AVPlayer: the hinted part and the blocking
// playlist at once, then whatever else is new.
func (l *listener) hintStep(ctx context.Context) error {
	at := l.next
	pl := &l.pl
	hinting := pl.hint != nil && !pl.hintByteRange && pl.nextPart() == at
	if hinting {
		var err error
		if l.hint.path, err = l.r.resolve.appendPath(l.hint.path[:0], pl.hint); err != nil {
			hinting = false
		} else {
			l.hint.request()
		}
	}
	// Safari asks for a whole segment at a segment boundary.
	err := l.fetchPlaylist(ctx, kindBlocking, at, at.idx > 0, false)
	var hr hintResult
	if hinting {
		hr = l.hint.result()
	}
	if hinting && !l.hintDone(ctx, &hr, err == nil && l.pl.ended) {
		hr = hintResult{}
	}
	if err != nil && !l.blockingFailed(err) {
		return err
	}
	if err := l.fetchInit(ctx); err != nil {
		return err
	}
	if hr.err == nil && hr.res.status != 0 && l.next == at {
		if s := pl.seg(at.msn); s != nil && at.idx < s.p1-s.p0 {
			p := &pl.parts[s.p0+at.idx]
			path, err := l.r.resolve.appendPath(l.path[:0], p.uri)
			if err == nil && bytes.Equal(path, l.hint.path) { // the hint was this part
				l.gotMedia(p.start, p.end(), hr.res.held, false)
				l.next.idx++
			}
			l.path = path[:0]
		}
	}
	if err := l.fetchParts(ctx, l.mc, false); err != nil {
		return err
	}
	return err
}

// hintFetcher requests hinted parts on the listener's second connection
// while the listener blocks on the playlist. It only does the I/O: on a
// goroutine of its own, or, when the listener is a loop task, as a second
// task of the same loop.
type hintFetcher struct {
	l    *listener
	path []byte // set by the listener before each job

	jobs chan struct{} // goroutine
	done chan hintResult

	t        *evloop.Task // loop task
	job      bool
	finished bool
	stop     bool
	res      hintResult
}

type hintResult struct {
	res result
	err error
}

func (h *hintFetcher) start() {
	if lt := h.l.t; lt != nil {
		h.t = lt.Loop().Spawn(h.runTask)
		return
	}
	h.jobs, h.done = make(chan struct{}), make(chan hintResult)
	go h.run()
}

// request starts fetching h.path; result waits for the outcome.
func (h *hintFetcher) request() {
	if h.t == nil {
		h.jobs <- struct{}{}
		return
	}
	h.job, h.finished = true, false
	h.t.Unpark()
}

func (h *hintFetcher) result() hintResult {
	if h.t == nil {
		return <-h.done
	}
	for !h.finished {
		if h.l.t.Park() != nil {
			return hintResult{err: errClosed}
		}
	}
	return h.res
}

func (h *hintFetcher) quit() {
	if h.t == nil {
		close(h.jobs)
		return
	}
	h.stop = true
	h.t.Unpark()
}

// run does the requests; the listener records them (hintDone).
func (h *hintFetcher) run() {
	for range h.jobs {
		res, err := h.l.mc.get(h.l.deadline(), h.path, nil)
		h.done <- hintResult{res, err}
	}
}

// runTask is run as a loop task.
func (h *hintFetcher) runTask(t *evloop.Task) {
	mc := h.l.mc
	defer mc.close()
	for {
		for !h.job && !h.stop {
			if t.Park() != nil {
				return
			}
		}
		if h.stop {
			return
		}
		h.job = false
		res, err := mc.get(h.l.deadline(), h.path, nil)
		h.res, h.finished = hintResult{res, err}, true
		h.l.t.Unpark()
	}
}

// hintDone records a hinted part request and reports whether it brought
// the part. A hint that failed because the broadcast ended (the playlist
// that came back with it has EXT-X-ENDLIST) is no error.
func (l *listener) hintDone(ctx context.Context, hr *hintResult, ended bool) bool {
	switch {
	case hr.err != nil:
		if !ended {
			l.fail(ctx, hr.err)
		}
		return false
	case ended && (hr.res.status == 404 || hr.res.status == 410):
		l.g.reqs[kindHint].Add(1)
		return false
	}
	return l.count(ctx, kindHint, hr.res) == nil
}
