// Package segmenter turns a live audio stream into Low-Latency HLS: fMP4 parts
// of a whole number of codec frames, segments of a whole number of parts, and
// after every part a new media playlist that obeys LLHLS.md §1.
//
// Parts are cut on frame counts, not on timers, so every part of a broadcast
// has the same duration and PART-TARGET is exactly the longest real part
// (AVPlayer rejects a stream whose parts exceed it). The segmenter keeps its
// own sample clock, so its output timestamps are continuous whatever the
// input's timestamps do.
package segmenter

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/amphi-live/amphi/internal/llhls"
)

// Object is a media object the segmenter produced.
type Object struct {
	Name string
	Data []byte
}

// Update is what the segmenter publishes after every part: the new playlist,
// the objects it made, and the names that are no longer downloadable.
type Update struct {
	Playlist *llhls.Playlist
	Added    []Object
	Removed  []string
}

// Sink receives updates, in order, from the goroutine that writes samples.
type Sink interface {
	Publish(u Update)
}

// ContentType is the MIME type of every media object the segmenter makes.
const ContentType = "audio/mp4"

// ErrEnded is returned by writes after End.
var ErrEnded = errors.New("segmenter: stream ended")

// Segmenter is not safe for concurrent use: one goroutine writes samples.
type Segmenter struct {
	codec Codec
	sink  Sink
	now   func() time.Time

	prefix          string
	timescale       int64
	partSamples     int64 // length of a full part, in timescale units
	partsPerSegment int
	partTarget      time.Duration
	targetDuration  int
	window          int   // segments listed, at least (see windowSamples)
	windowSamples   int64 // the listed segments span at least this much
	keepSamples     int64 // 3 × target duration, in samples: how long part tags stay listed and names stay downloadable after leaving the playlist
	cfg             Config
	layoutPending   bool // Opus: parts are sized from the first packet

	started  bool
	ended    bool
	anchor   time.Time // wall-clock time of sample 0
	samples  int64     // samples written so far
	fragSeq  uint32
	initName string

	segments []segmentState // complete segments in the window
	retired  []retiredState // left the window, still downloadable
	cur      segmentState   // segment in progress
	part     partState      // part in progress
	discont  uint64         // discontinuity sequence
	hadDisc  bool
	reanchor bool // the next sample re-anchors PROGRAM-DATE-TIME
	pending  []Object
}

type segmentState struct {
	msn           uint64
	startSample   int64
	pdt           time.Time // wall-clock time of the first sample
	samples       int64
	discontinuity bool
	parts         []llhls.Part
	partNames     []string
	data          []byte
}

type retiredState struct {
	names  []string
	leftAt int64 // s.samples when the segment left the playlist
}

type partState struct {
	startSample int64
	samples     int64
	frames      []*fmp4.Sample
}

// New returns a Segmenter for codec that publishes to sink. now defaults to
// time.Now; it anchors EXT-X-PROGRAM-DATE-TIME to the first sample's arrival.
func New(cfg Config, codec Codec, sink Sink, now func() time.Time) (*Segmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := validateCodec(codec); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("segmenter: sink is required")
	}
	if now == nil {
		now = time.Now
	}
	s := &Segmenter{codec: codec, sink: sink, now: now}

	s.cfg = cfg.withDefaults()
	s.timescale = int64(codec.timescale())
	s.layout(codec.nominalFrame())
	_, s.layoutPending = codec.(*Opus)

	var err error
	if s.prefix, err = randomPrefix(); err != nil {
		return nil, err
	}
	s.initName = s.prefix + "-init.mp4"
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{
		ID:        1,
		TimeScale: uint32(s.timescale),
		Codec:     codec.fmp4Codec(),
	}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("segmenter: writing init section: %w", err)
	}
	s.pending = append(s.pending, Object{Name: s.initName, Data: buf.Bytes()})
	s.cur = segmentState{msn: 0}
	return s, nil
}

// layout sizes parts, segments and the window for frames of frame samples.
// Parts hold a whole number of frames, so every full part has the same
// duration and PART-TARGET is exactly that duration.
func (s *Segmenter) layout(frame int64) {
	cfg := s.cfg
	frames := int64(math.Ceil(float64(cfg.PartDuration) * float64(s.timescale) / float64(time.Second) / float64(frame)))
	s.partSamples = max(1, frames) * frame
	s.partTarget = samplesToDuration(s.partSamples, s.timescale)
	s.partsPerSegment = max(1, int(math.Round(float64(cfg.SegmentDuration)/float64(s.partTarget))))
	segDur := time.Duration(s.partsPerSegment) * s.partTarget
	s.targetDuration = max(1, int(math.Round(segDur.Seconds())))

	td := time.Duration(s.targetDuration) * time.Second
	s.window = cfg.Window
	if s.window == 0 {
		s.window = max(7, int(math.Ceil(float64(12*td)/float64(segDur))))
	}
	// Short segments (after discontinuities, at the end) must not shrink
	// the window below what its segment count promises, nor below 3 ×
	// target duration (§6.2.2).
	s.windowSamples = max(int64(s.window)*int64(s.partsPerSegment)*s.partSamples, 3*int64(s.targetDuration)*s.timescale)
	s.keepSamples = 3 * int64(s.targetDuration) * s.timescale
}

// randomPrefix makes URIs unique per broadcast session, so a restart never
// reuses a name that a cache may still hold (OvenMediaEngine #769).
func randomPrefix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("segmenter: random prefix: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// PartTarget is the duration of every full part; it is the PART-TARGET.
func (s *Segmenter) PartTarget() time.Duration { return s.partTarget }

// TargetDuration is the EXT-X-TARGETDURATION in seconds.
func (s *Segmenter) TargetDuration() int { return s.targetDuration }

// PartsPerSegment is the number of parts in a full segment.
func (s *Segmenter) PartsPerSegment() int { return s.partsPerSegment }

// Codec returns the codec the segmenter was made for.
func (s *Segmenter) Codec() Codec { return s.codec }

// WriteAAC writes MPEG-4 Audio access units. pts is informational: output
// timestamps come from the segmenter's own sample clock.
func (s *Segmenter) WriteAAC(_ time.Duration, aus [][]byte) error {
	if _, ok := s.codec.(*AAC); !ok {
		return fmt.Errorf("segmenter: AAC written to a %s stream", s.codec)
	}
	return s.write(aus)
}

// WriteOpus writes Opus packets; see WriteAAC for pts.
func (s *Segmenter) WriteOpus(_ time.Duration, packets [][]byte) error {
	if _, ok := s.codec.(*Opus); !ok {
		return fmt.Errorf("segmenter: Opus written to a %s stream", s.codec)
	}
	return s.write(packets)
}

func (s *Segmenter) write(aus [][]byte) error {
	if s.ended {
		return ErrEnded
	}
	for _, au := range aus {
		if len(au) == 0 {
			continue
		}
		d := s.codec.frameSamples(au)
		if s.layoutPending && d > 0 {
			// Nothing is published before the first part, so parts can
			// still be sized to this encoder's packet duration: 60 ms
			// packets make 240 ms parts rather than 180 ms ones.
			s.layoutPending = false
			s.layout(d)
		}
		if d <= 0 || d > s.partSamples {
			return fmt.Errorf("segmenter: access unit of %d samples cannot fit a part of %d", d, s.partSamples)
		}
		switch {
		case !s.started:
			s.started = true
			s.anchor = s.now() // sample 0 is now
		case s.reanchor:
			// After a discontinuity the next sample is now; PDT only ever
			// moves forward.
			s.reanchor = false
			if a := s.now().Add(-samplesToDuration(s.samples, s.timescale)); a.After(s.anchor) {
				s.anchor = a
			}
		}
		// Close the part before it would exceed PART-TARGET.
		if s.part.samples > 0 && s.part.samples+d > s.partSamples {
			if err := s.flushPart(); err != nil {
				return err
			}
		}
		if s.part.samples == 0 {
			s.part.startSample = s.samples
		}
		s.part.frames = append(s.part.frames, &fmp4.Sample{Duration: uint32(d), Payload: au})
		s.part.samples += d
		s.samples += d
		if s.part.samples >= s.partSamples {
			if err := s.flushPart(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Segmenter) flushPart() error {
	p := fmp4.Part{
		SequenceNumber: s.fragSeq,
		Tracks: []*fmp4.PartTrack{{
			ID:       1,
			BaseTime: uint64(s.part.startSample),
			Samples:  s.part.frames,
		}},
	}
	s.fragSeq++
	var buf seekablebuffer.Buffer
	if err := p.Marshal(&buf); err != nil {
		return fmt.Errorf("segmenter: writing part: %w", err)
	}
	data := buf.Bytes()
	name := s.prefix + "-" + strconv.FormatUint(s.cur.msn, 10) + "." + strconv.Itoa(len(s.cur.parts)) + ".m4s"
	if len(s.cur.parts) == 0 {
		s.cur.startSample = s.part.startSample
		s.cur.pdt = s.pdt(s.part.startSample)
	}
	s.cur.parts = append(s.cur.parts, llhls.Part{
		Duration:    samplesToDuration(s.part.samples, s.timescale),
		URI:         name,
		Independent: true, // every audio frame is a sync sample
	})
	s.cur.partNames = append(s.cur.partNames, name)
	s.cur.samples += s.part.samples
	s.cur.data = append(s.cur.data, data...)
	s.pending = append(s.pending, Object{Name: name, Data: data})
	s.part = partState{}

	var removed []string
	if len(s.cur.parts) >= s.partsPerSegment {
		removed = s.closeSegment()
	}
	s.publish(removed)
	return nil
}

// closeSegment moves the segment in progress into the window and returns the
// names that stopped being downloadable.
func (s *Segmenter) closeSegment() []string {
	seg := s.cur
	s.pending = append(s.pending, Object{Name: s.segmentName(seg.msn), Data: seg.data})
	seg.data = nil // the Sink owns the bytes now
	s.segments = append(s.segments, seg)
	s.cur = segmentState{msn: seg.msn + 1}

	var removed []string
	for len(s.segments) > s.window && s.listedSamples()-s.segments[0].samples >= s.windowSamples {
		gone := s.segments[0]
		s.segments = s.segments[1:]
		names := append([]string{s.segmentName(gone.msn)}, gone.partNames...)
		s.retired = append(s.retired, retiredState{names: names, leftAt: s.samples})
		// EXT-X-DISCONTINUITY-SEQUENCE counts the discontinuity tags that
		// slid out of the playlist (§6.2.2).
		if gone.discontinuity {
			s.discont++
		}
	}
	// Names stay downloadable 3 × target duration after they left (§6.2.2).
	for len(s.retired) > 0 && s.samples-s.retired[0].leftAt >= s.keepSamples {
		removed = append(removed, s.retired[0].names...)
		s.retired = s.retired[1:]
	}
	return removed
}

// listedSamples is the duration of the complete segments in the playlist.
func (s *Segmenter) listedSamples() int64 {
	var n int64
	for i := range s.segments {
		n += s.segments[i].samples
	}
	return n
}

func (s *Segmenter) segmentName(msn uint64) string {
	return s.prefix + "-" + strconv.FormatUint(msn, 10) + ".m4s"
}

// Discontinuity marks the next segment as following a break (an ingest that
// reconnected). The part in progress is closed first.
func (s *Segmenter) Discontinuity() error {
	if s.ended {
		return ErrEnded
	}
	if s.part.samples > 0 {
		if err := s.flushPart(); err != nil {
			return err
		}
	}
	if len(s.cur.parts) > 0 {
		s.publish(s.closeSegment())
	}
	s.cur.discontinuity = true
	s.hadDisc = true
	// The publisher was away: wall-clock time moved on without samples.
	s.reanchor = true
	return nil
}

// End closes the last part and segment and publishes the final playlist
// with EXT-X-ENDLIST. Later writes fail with ErrEnded.
func (s *Segmenter) End() {
	if s.ended {
		return
	}
	if s.part.samples > 0 {
		if err := s.flushPart(); err != nil {
			s.part = partState{}
		}
	}
	var removed []string
	if len(s.cur.parts) > 0 {
		removed = s.closeSegment()
	}
	s.ended = true
	s.publish(removed)
}

func (s *Segmenter) publish(removed []string) {
	s.sink.Publish(Update{Playlist: s.playlist(), Added: s.pending, Removed: removed})
	s.pending = nil
}

func (s *Segmenter) pdt(sample int64) time.Time {
	return s.anchor.Add(samplesToDuration(sample, s.timescale)).UTC()
}

func (s *Segmenter) playlist() *llhls.Playlist {
	td := time.Duration(s.targetDuration) * time.Second
	pl := &llhls.Playlist{
		TargetDuration:        s.targetDuration,
		PartTarget:            s.partTarget,
		PartHoldBack:          3 * s.partTarget,
		HoldBack:              3 * td,
		CanSkipUntil:          6 * td,
		DiscontinuitySequence: s.discont,
		HasDiscontinuity:      s.hadDisc,
		MapURI:                s.initName,
		Ended:                 s.ended,
	}
	if len(s.segments) > 0 {
		pl.MediaSequence = s.segments[0].msn
	} else {
		pl.MediaSequence = s.cur.msn
	}
	pl.Segments = make([]llhls.Segment, len(s.segments))
	// Part tags stay listed for segments that start within 3 × target
	// duration of the end of the playlist (§6.2.2 allows removing older ones).
	fromEnd := s.cur.samples
	for i := len(s.segments) - 1; i >= 0; i-- {
		seg := &s.segments[i]
		fromEnd += seg.samples
		ps := llhls.Segment{
			Duration:        samplesToDuration(seg.samples, s.timescale),
			URI:             s.segmentName(seg.msn),
			ProgramDateTime: seg.pdt,
			Discontinuity:   seg.discontinuity,
		}
		if fromEnd-seg.samples < s.keepSamples {
			ps.Parts = seg.parts
		}
		pl.Segments[i] = ps
	}
	if !s.ended {
		pl.Parts = s.cur.parts
		pl.NextPartDiscontinuity = s.cur.discontinuity && len(s.cur.parts) > 0
		if len(s.cur.parts) > 0 {
			pl.NextProgramDateTime = s.cur.pdt
		}
		pl.PreloadHint = s.prefix + "-" + strconv.FormatUint(s.cur.msn, 10) + "." + strconv.Itoa(len(s.cur.parts)) + ".m4s"
	}
	// Slices are shared with later playlists only by appending past their
	// length, so each published Playlist stays immutable.
	pl.Parts = pl.Parts[:len(pl.Parts):len(pl.Parts)]
	return pl
}

// samplesToDuration converts without intermediate overflow for any realistic
// broadcast length.
func samplesToDuration(samples, timescale int64) time.Duration {
	sec := samples / timescale
	rem := samples % timescale
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(timescale)
}
