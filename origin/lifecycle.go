package origin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/amphi-live/amphi/internal/llhls"
	"github.com/amphi-live/amphi/segmenter"
)

// Lifecycle errors.
var (
	ErrUnknownBroadcast = errors.New("no such broadcast: start it first (amphi broadcast start NAME)")
	ErrBadKey           = errors.New("wrong stream key")
	ErrEnded            = errors.New("broadcast has ended: start it again for a new key")
	ErrExists           = errors.New("broadcast already exists and has not ended")
)

// Broadcast states, as the API and CLI show them.
const (
	StateCreated      = "created"      // waiting for its host
	StateLive         = "live"         // a publisher is attached
	StateReconnecting = "reconnecting" // publisher gone, within the grace
	StateIngestLost   = "ingest_lost"  // publisher gone past the grace
	StateEnded        = "ended"        // stopped by an operator
)

// entry is one managed broadcast: a name with a stream key, created over the
// admin API. Guarded by Server.mu.
type entry struct {
	rec        record
	state      string
	sess       *Session // segmenter session; survives publisher reconnects
	ingest     *Ingest  // attached publisher, if any
	liveSince  time.Time
	graceTimer *time.Timer
	remote     string
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// newKey makes a stream key: 160 random bits, URL- and OBS-safe.
func newKey() (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]), nil
}

// loadEntries restores the broadcasts of an earlier run. Whatever was live is
// waiting for its host again.
func (s *Server) loadEntries() error {
	recs, err := s.store.all()
	if err != nil {
		return fmt.Errorf("data: reading broadcasts: %w", err)
	}
	for _, r := range recs {
		st := StateCreated
		if r.Ended {
			st = StateEnded
		}
		s.entries[r.Name] = &entry{rec: r, state: st}
	}
	return nil
}

// CreateBroadcast creates broadcast name and returns its stream key, which is
// stored only as a hash. An ended broadcast may be created again.
func (s *Server) CreateBroadcast(name string) (string, error) {
	if !llhls.ValidName(name) {
		return "", ErrInvalidName
	}
	key, err := newKey()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[name]; ok && e.state != StateEnded {
		return "", ErrExists
	}
	if _, live := s.sessions[name]; live {
		return "", ErrExists // an unmanaged publisher (demo, open ingest) has it
	}
	rec := record{Name: name, KeyHash: hashKey(key), CreatedAt: s.now().UTC()}
	if err := s.store.put(rec); err != nil {
		return "", fmt.Errorf("saving broadcast: %w", err)
	}
	s.entries[name] = &entry{rec: rec, state: StateCreated}
	s.log.Info("broadcast created", "name", name)
	return key, nil
}

// StopBroadcast ends broadcast name: ENDLIST, held requests released, the
// publisher (if any) cut off.
func (s *Server) StopBroadcast(name string) error {
	s.mu.Lock()
	e, ok := s.entries[name]
	if !ok {
		s.mu.Unlock()
		return ErrUnknownBroadcast
	}
	if e.state == StateEnded {
		s.mu.Unlock()
		return nil
	}
	e.state = StateEnded
	e.rec.Ended = true
	if e.graceTimer != nil {
		e.graceTimer.Stop()
	}
	sess := e.sess
	e.ingest = nil
	err := s.store.put(e.rec)
	s.mu.Unlock()
	if sess != nil {
		sess.End() // a publisher still attached now fails its next write
	}
	s.log.Info("broadcast stopped", "name", name)
	return err
}

// preauthorize refuses what can be refused before an ingest's media is read.
func (s *Server) preauthorize(name, key string) error {
	if !llhls.ValidName(name) {
		return ErrInvalidName
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if !ok {
		if !s.cfg.Ingest.Open {
			return ErrUnknownBroadcast
		}
		if _, live := s.sessions[name]; live {
			return ErrAlreadyLive
		}
		if len(s.sessions) >= s.cfg.Ingest.MaxStreams {
			return ErrTooManyStream
		}
		return nil
	}
	switch {
	case subtle.ConstantTimeCompare(hashKey(key), e.rec.KeyHash) != 1:
		return ErrBadKey
	case e.state == StateEnded:
		return ErrEnded
	case e.ingest != nil:
		return ErrAlreadyLive
	}
	return nil
}

// Ingest is one publisher's connection to a broadcast.
type Ingest struct {
	s    *Server
	e    *entry // nil for an unmanaged (open) ingest
	sess *Session
	once sync.Once
}

// attachIngest authorizes a publisher for broadcast name with key and
// attaches it. A publisher that comes back to a broadcast whose segmenter is
// still running (within or past the reconnect grace) continues the same
// playlist after an EXT-X-DISCONTINUITY, so listeners' URLs do not change.
func (s *Server) attachIngest(name, key string, codec segmenter.Codec, remote string) (*Ingest, error) {
	if err := s.preauthorize(name, key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e, managed := s.entries[name]
	s.mu.Unlock()
	if !managed {
		sess, err := s.Publish(name, codec)
		if err != nil {
			return nil, err
		}
		return &Ingest{s: s, sess: sess}, nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Re-check under the lock: another publisher may have won the race.
	if subtle.ConstantTimeCompare(hashKey(key), e.rec.KeyHash) != 1 {
		return nil, ErrBadKey
	}
	if e.state == StateEnded {
		return nil, ErrEnded
	}
	if e.ingest != nil {
		return nil, ErrAlreadyLive
	}
	if e.sess != nil && sameCodec(e.sess.seg.Codec(), codec) {
		if err := e.sess.discontinuity(); err != nil {
			return nil, err
		}
		s.log.Info("publisher reconnected", "name", name, "remote", remote, "was", e.state)
	} else {
		if e.sess != nil {
			// A new codec needs a new init section: a new session.
			old := e.sess
			go old.End()
		}
		sess, err := s.startSessionLocked(name, codec)
		if err != nil {
			return nil, err
		}
		e.sess = sess
		e.liveSince = s.now()
	}
	if e.graceTimer != nil {
		e.graceTimer.Stop()
		e.graceTimer = nil
	}
	in := &Ingest{s: s, e: e, sess: e.sess}
	e.ingest = in
	e.state = StateLive
	e.remote = remote
	return in, nil
}

func sameCodec(a, b segmenter.Codec) bool {
	return a.String() == b.String() && segmenter.CodecsAttribute(a) == segmenter.CodecsAttribute(b)
}

// WriteAAC writes AAC access units.
func (in *Ingest) WriteAAC(pts time.Duration, aus [][]byte) error { return in.sess.WriteAAC(pts, aus) }

// WriteOpus writes Opus packets.
func (in *Ingest) WriteOpus(pts time.Duration, packets [][]byte) error {
	return in.sess.WriteOpus(pts, packets)
}

// Detach is called when the publisher goes away. A managed broadcast keeps
// its playlist open for the publisher's return: it is "reconnecting" for the
// grace period, then "ingest lost". An unmanaged one ends.
func (in *Ingest) Detach() {
	in.once.Do(func() {
		if in.e == nil {
			in.sess.End()
			return
		}
		s, e := in.s, in.e
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.ingest != in || e.state == StateEnded {
			return
		}
		e.ingest = nil
		e.state = StateReconnecting
		grace := time.Duration(s.cfg.Ingest.ReconnectGrace)
		e.graceTimer = time.AfterFunc(grace, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if e.ingest == nil && e.state == StateReconnecting {
				e.state = StateIngestLost
				s.log.Warn("ingest lost: publisher did not return within the grace", "name", e.rec.Name, "grace", grace)
			}
		})
		s.log.Info("publisher gone; waiting for it to reconnect", "name", e.rec.Name, "grace", grace)
	})
}

// BroadcastStatus is a broadcast as the admin API shows it.
type BroadcastStatus struct {
	Name          string     `json:"name"`
	State         string     `json:"state"`
	CreatedAt     time.Time  `json:"created_at"`
	LiveSince     *time.Time `json:"live_since,omitempty"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	Codec         string     `json:"codec,omitempty"`
	BitrateBPS    int        `json:"bitrate_bps"`
	MediaSequence uint64     `json:"media_sequence"`
	Part          int        `json:"part"`
}

// Status returns broadcast name's status.
func (s *Server) Status(name string) (BroadcastStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if !ok {
		return BroadcastStatus{}, ErrUnknownBroadcast
	}
	return s.statusLocked(e), nil
}

// List returns every managed broadcast's status, by name.
func (s *Server) List() []BroadcastStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BroadcastStatus, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, s.statusLocked(e))
	}
	sortStatuses(out)
	return out
}

func (s *Server) statusLocked(e *entry) BroadcastStatus {
	st := BroadcastStatus{Name: e.rec.Name, State: e.state, CreatedAt: e.rec.CreatedAt, Part: -1}
	if e.sess == nil {
		return st
	}
	b := e.sess.b
	st.Codec = b.codec.String()
	if !e.liveSince.IsZero() && e.state != StateEnded {
		t := e.liveSince.UTC()
		st.LiveSince = &t
		st.UptimeSeconds = s.now().Sub(e.liveSince).Seconds()
	}
	pl := b.feed.Current().Playlist()
	_, st.BitrateBPS = bandwidth(pl.Segments, b.objects, &b.mu)
	if len(pl.Segments) == 0 {
		st.BitrateBPS = 0
	}
	st.MediaSequence, st.Part = b.position()
	return st
}
