package edge

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/amphi-live/amphi/internal/llhls"
)

// partRef is one part of a media playlist with its position.
type partRef struct {
	msn uint64
	idx int
	uri string
}

// partsOf lists every part a playlist names, oldest first.
func partsOf(pl *llhls.Playlist) []partRef {
	var out []partRef
	for i, s := range pl.Segments {
		for j, p := range s.Parts {
			out = append(out, partRef{msn: pl.MediaSequence + uint64(i), idx: j, uri: p.URI})
		}
	}
	for j, p := range pl.Parts {
		out = append(out, partRef{msn: pl.NextMSN(), idx: j, uri: p.URI})
	}
	return out
}

// received is one part a listener got.
type received struct {
	uri string
	at  time.Time
}

// failure is a response a listener did not expect.
type failure struct {
	at     time.Time
	target string
	status int    // 0 for a transport error
	err    string // transport error or protocol violation
}

func (f failure) String() string {
	return fmt.Sprintf("%s %s: status %d %s", f.at.Format("15:04:05.000"), f.target, f.status, f.err)
}

// sharedTruth checks what every listener of one run sees against the
// others: a part URI has one content, and one successor.
type sharedTruth struct {
	mu   sync.Mutex
	sum  map[string]uint32
	next map[string]string
}

func newSharedTruth() *sharedTruth {
	return &sharedTruth{sum: map[string]uint32{}, next: map[string]string{}}
}

func (s *sharedTruth) content(uri string, sum uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.sum[uri]; ok && old != sum {
		return fmt.Errorf("%s has two contents", uri)
	}
	s.sum[uri] = sum
	return nil
}

func (s *sharedTruth) successor(prev, uri string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.next[prev]; ok && old != uri {
		return fmt.Errorf("%s followed by %s and by %s", prev, old, uri)
	}
	s.next[prev] = uri
	return nil
}

// llListener plays a broadcast the way hls.js does in low-latency mode:
// the multivariant playlist, the media playlist, then, for ever, a blocking
// reload for the part after the newest one it has and a GET of every new
// part the answer lists. It stops at its first failure or when ctx ends.
type llListener struct {
	client *http.Client
	base   string // http://host:port
	name   string
	truth  *sharedTruth

	parts    []received
	failures []failure
	joinedAt time.Time
	catchUps int // times it fell behind the listed parts and loaded segments
	segments int // segments loaded to catch up
}

// run plays until ctx ends or a failure. Errors caused by ctx ending are
// not failures.
func (l *llListener) run(ctx context.Context) {
	prefix := l.base + "/live/" + l.name + "/"
	mv, ok := l.get(ctx, prefix+"index.m3u8")
	if !ok {
		return
	}
	media := mediaPlaylistURI(string(mv))
	if media == "" {
		l.fail(prefix+"index.m3u8", http.StatusOK, "no media playlist in the multivariant playlist")
		return
	}
	body, ok := l.get(ctx, prefix+media)
	if !ok {
		return
	}
	pl, ok := l.parse(prefix+media, body)
	if !ok {
		return
	}
	if pl.MapURI != "" {
		if _, ok := l.get(ctx, prefix+pl.MapURI); !ok {
			return
		}
	}
	all := partsOf(pl)
	if len(all) == 0 {
		l.fail(prefix+media, http.StatusOK, "live LL playlist lists no part")
		return
	}
	// Join at the newest complete part.
	last := all[len(all)-1]
	if !l.fetchPart(ctx, prefix, "", last.uri) {
		return
	}
	l.joinedAt = time.Now()
	for ctx.Err() == nil {
		target := prefix + media + "?_HLS_msn=" + strconv.FormatUint(last.msn, 10) + "&_HLS_part=" + strconv.Itoa(last.idx+1)
		body, ok := l.get(ctx, target)
		if !ok {
			return
		}
		pl, ok := l.parse(target, body)
		if !ok {
			return
		}
		all := partsOf(pl)
		at := -1
		for i, p := range all {
			if p.uri == last.uri {
				at = i
			}
		}
		from, prev := at+1, last.uri
		switch {
		case at < 0:
			// Fell behind the parts the playlist lists (a slow listener):
			// like hls.js, load whole segments up to the first listed
			// segment start, then go on with parts. Media is lost only if
			// the segment holding the last part is gone too.
			var ok bool
			if from, ok = l.catchUp(ctx, prefix, target, pl, all, last); !ok {
				return
			}
			prev = "" // the next part does not follow the last one
		case at == len(all)-1 && !pl.Ended:
			l.fail(target, http.StatusOK, "blocking reload answered without the requested part")
			return
		}
		for _, p := range all[from:] {
			if !l.fetchPart(ctx, prefix, prev, p.uri) {
				return
			}
			last, prev = p, p.uri
		}
		if pl.Ended {
			return
		}
	}
}

// catchUp loads the segments from the one holding last to the first
// segment whose parts pl lists from part 0, and returns that part's index
// in all.
func (l *llListener) catchUp(ctx context.Context, prefix, target string, pl *llhls.Playlist, all []partRef, last partRef) (int, bool) {
	from := -1
	for i, p := range all {
		if p.idx == 0 && p.msn > last.msn {
			from = i
			break
		}
	}
	if from < 0 || last.msn < pl.MediaSequence {
		first, newest := all[0], all[len(all)-1]
		l.fail(target, http.StatusOK, fmt.Sprintf("gap: the playlist lists neither the last part received, %s, nor its segment "+
			"(joined %s ago with %d parts since; the playlist lists segments from %d, parts %d.%d to %d.%d)",
			last.uri, time.Since(l.joinedAt).Round(time.Millisecond), len(l.parts), pl.MediaSequence,
			first.msn, first.idx, newest.msn, newest.idx))
		return 0, false
	}
	for msn := last.msn; msn < all[from].msn; msn++ {
		seg := pl.Segments[msn-pl.MediaSequence]
		if _, ok := l.get(ctx, prefix+seg.URI); !ok {
			return 0, false
		}
		l.segments++
	}
	l.catchUps++
	return from, true
}

// fetchPart GETs one part and records it.
func (l *llListener) fetchPart(ctx context.Context, prefix, prev, uri string) bool {
	b, ok := l.get(ctx, prefix+uri)
	if !ok {
		return false
	}
	if len(b) == 0 {
		l.fail(prefix+uri, http.StatusOK, "empty part")
		return false
	}
	if l.truth != nil {
		if err := l.truth.content(uri, crc32.ChecksumIEEE(b)); err != nil {
			l.fail(prefix+uri, http.StatusOK, err.Error())
			return false
		}
		if prev != "" {
			if err := l.truth.successor(prev, uri); err != nil {
				l.fail(prefix+uri, http.StatusOK, err.Error())
				return false
			}
		}
	}
	l.parts = append(l.parts, received{uri: uri, at: time.Now()})
	return true
}

// get fetches target; anything but a 200 is a failure unless ctx ended.
func (l *llListener) get(ctx context.Context, target string) ([]byte, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		l.fail(target, 0, err.Error())
		return nil, false
	}
	res, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(target, 0, err.Error())
		}
		return nil, false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(target, res.StatusCode, err.Error())
		}
		return nil, false
	}
	if res.StatusCode != http.StatusOK {
		l.fail(target, res.StatusCode, string(b))
		return nil, false
	}
	return b, true
}

func (l *llListener) parse(target string, b []byte) (*llhls.Playlist, bool) {
	pl, err := llhls.ParsePlaylist(b)
	if err != nil {
		l.fail(target, http.StatusOK, err.Error())
		return nil, false
	}
	return pl, true
}

func (l *llListener) fail(target string, status int, msg string) {
	l.failures = append(l.failures, failure{at: time.Now(), target: target, status: status, err: msg})
}

// maxGap is the longest wait between two consecutive parts received in
// [from, to].
func (l *llListener) maxGap(from, to time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(l.parts); i++ {
		a, b := l.parts[i-1].at, l.parts[i].at
		if b.Before(from) || a.After(to) {
			continue
		}
		gap = max(gap, b.Sub(a))
	}
	return gap
}

// runListeners runs n listeners against base until ctx ends and returns
// them once all have stopped. Their joins are spread evenly over ramp, as
// an audience arrives; a 2-core machine under -race cannot take hundreds of
// joins in the same millisecond and still keep real time.
func runListeners(ctx context.Context, client *http.Client, base, name string, n int, ramp time.Duration, truth *sharedTruth) []*llListener {
	ls := make([]*llListener, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ls {
		ls[i] = &llListener{client: client, base: base, name: name, truth: truth}
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(ramp * time.Duration(i) / time.Duration(n)))):
			}
			ls[i].run(ctx)
		})
	}
	wg.Wait()
	return ls
}

// requireAllDelivered fails the test for every listener that failed or got
// fewer than minParts parts, or, unless catchUpOK, had to load segments
// because it fell behind the listed parts. It returns the number of
// catch-ups.
func requireAllDelivered(t *testing.T, ls []*llListener, minParts int, catchUpOK bool) int {
	t.Helper()
	bad, catchUps := 0, 0
	for i, l := range ls {
		catchUps += l.catchUps
		if len(l.failures) > 0 || len(l.parts) < minParts || (!catchUpOK && l.catchUps > 0) {
			bad++
			if bad <= 5 {
				t.Errorf("listener %d: %d parts (want >= %d), %d catch-ups (%d segments), failures %v",
					i, len(l.parts), minParts, l.catchUps, l.segments, l.failures)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... and %d more listeners failed", bad-5)
	}
	got := make([]int, len(ls))
	for i, l := range ls {
		got[i] = len(l.parts)
	}
	slices.Sort(got)
	t.Logf("%d listeners: parts received min %d, median %d, max %d", len(ls), got[0], got[len(got)/2], got[len(got)-1])
	return catchUps
}
