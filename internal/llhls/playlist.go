// Package llhls is amphi's serving core: the Low-Latency HLS rules that every
// tier obeys. It holds the playlist model, the parsing of delivery directives,
// immutable pre-rendered playlist snapshots with closed-channel wake-ups, and
// the HTTP handler that answers listeners (holds, 400/503, TTLs, gzip, CORS).
//
// The origin mounts this core over its in-process segmenter; the edge mounts it
// over a tracker that follows an HTTP upstream. Both therefore behave the same.
package llhls

import (
	"bytes"
	"math"
	"strconv"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// Part is one EXT-X-PART.
type Part struct {
	Duration    time.Duration
	URI         string
	Independent bool
}

// Segment is one complete media segment.
type Segment struct {
	Duration time.Duration
	URI      string
	// ProgramDateTime is the wall-clock time of the segment's first sample.
	ProgramDateTime time.Time
	// Discontinuity marks a segment that follows a break in timestamps or
	// encoding (an ingest reconnect).
	Discontinuity bool
	// Parts lists the segment's parts. Old segments may have none listed;
	// they stay addressable by URI.
	Parts []Part
}

// RenditionReport is one EXT-X-RENDITION-REPORT.
type RenditionReport struct {
	URI      string
	LastMSN  uint64
	LastPart int // -1 when the rendition has no part in progress
}

// Playlist is the model of one LL-HLS media playlist. A Playlist handed to
// NewSnapshot must not be modified afterwards.
type Playlist struct {
	// TargetDuration in whole seconds; constant for a broadcast.
	TargetDuration int
	// PartTarget is the longest part any segment of the broadcast may have.
	PartTarget time.Duration
	// PartHoldBack is the recommended distance from the live edge.
	PartHoldBack time.Duration
	// HoldBack is the same for players that do not use parts.
	HoldBack time.Duration
	// CanSkipUntil is the skip boundary offered for delta updates; 0 disables them.
	CanSkipUntil time.Duration

	MediaSequence         uint64
	DiscontinuitySequence uint64
	// HasDiscontinuity is set once the broadcast ever had a discontinuity:
	// the playlist then carries EXT-X-DISCONTINUITY-SEQUENCE for good.
	HasDiscontinuity bool

	MapURI string

	Segments []Segment
	// Parts are the complete parts of the segment in progress.
	Parts []Part
	// NextPartDiscontinuity is set when the segment in progress starts after a
	// discontinuity; it is rendered before its first part.
	NextPartDiscontinuity bool
	// NextProgramDateTime is the wall-clock time of the segment in progress.
	NextProgramDateTime time.Time
	// PreloadHint is the URI of the next part, empty when none is announced.
	PreloadHint string

	RenditionReports []RenditionReport
	Ended            bool
}

// NextMSN is the media sequence number of the segment in progress.
func (p *Playlist) NextMSN() uint64 {
	return p.MediaSequence + uint64(len(p.Segments))
}

// AdvancePartLimit is how many parts beyond the last one a client may ask to
// wait for before the request is refused (§6.2.5.2).
func (p *Playlist) AdvancePartLimit() int {
	if p.PartTarget > 0 && p.PartTarget < time.Second {
		return int(math.Ceil(3 / p.PartTarget.Seconds()))
	}
	return 3
}

// skippable is how many leading segments a delta update leaves out: those
// whose end lies further than CanSkipUntil from the end of the playlist.
func (p *Playlist) skippable() int {
	if p.CanSkipUntil <= 0 || p.Ended {
		return 0
	}
	var tail time.Duration
	for _, pt := range p.Parts {
		tail += pt.Duration
	}
	n := len(p.Segments)
	for n > 0 {
		if tail+p.Segments[n-1].Duration > p.CanSkipUntil {
			break
		}
		tail += p.Segments[n-1].Duration
		n--
	}
	// n segments have an end further than the boundary; the one straddling it
	// stays.
	if n > 0 {
		n--
	}
	return n
}

// Render writes the playlist as text; delta renders a Playlist Delta Update.
func (p *Playlist) Render(delta bool) ([]byte, error) {
	m := playlist.Media{
		Version:        9,
		TargetDuration: p.TargetDuration,
		MediaSequence:  int(p.MediaSequence),
		Endlist:        p.Ended,
	}
	if p.PartTarget > 0 {
		m.PartInf = &playlist.MediaPartInf{PartTarget: p.PartTarget}
	}
	if p.HasDiscontinuity {
		m.DiscontinuitySequence = ptr(int(p.DiscontinuitySequence))
	}
	if p.MapURI != "" {
		m.Map = &playlist.MediaMap{URI: p.MapURI}
	}

	skip := 0
	if delta && p.CanSkipUntil > 0 && !p.Ended {
		skip = p.skippable()
		m.Skip = &playlist.MediaSkip{SkippedSegments: skip}
	}

	segs := make([]*playlist.MediaSegment, 0, len(p.Segments)-skip+1)
	for i := skip; i < len(p.Segments); i++ {
		s := &p.Segments[i]
		ms := &playlist.MediaSegment{
			Duration:      s.Duration,
			URI:           s.URI,
			Discontinuity: s.Discontinuity,
		}
		if !s.ProgramDateTime.IsZero() {
			ms.DateTime = ptr(s.ProgramDateTime)
		}
		for _, pt := range s.Parts {
			ms.Parts = append(ms.Parts, mediaPart(pt))
		}
		segs = append(segs, ms)
	}
	m.Segments = segs
	for _, pt := range p.Parts {
		m.Parts = append(m.Parts, mediaPart(pt))
	}
	if p.PreloadHint != "" && !p.Ended {
		m.PreloadHint = &playlist.MediaPreloadHint{URI: p.PreloadHint}
	}
	for _, r := range p.RenditionReports {
		rr := &playlist.MediaRenditionReport{URI: r.URI, LastMSN: int(r.LastMSN)}
		if r.LastPart >= 0 {
			rr.LastPart = ptr(r.LastPart)
		}
		m.RenditionReport = append(m.RenditionReport, rr)
	}

	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return p.addTrailingSegmentTags(p.addServerControl(b)), nil
}

// addServerControl writes EXT-X-SERVER-CONTROL after EXT-X-TARGETDURATION.
// It is rendered here rather than by gohlslib because it must carry
// HOLD-BACK and must stay byte-identical for the whole broadcast, the final
// playlist included: CoreMedia stops for good on a PART-HOLD-BACK change
// (mediamtx #6237).
func (p *Playlist) addServerControl(b []byte) []byte {
	if p.PartTarget <= 0 && p.CanSkipUntil <= 0 {
		return b
	}
	line := []byte("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")
	attr := func(name string, d time.Duration) {
		if d > 0 {
			line = append(line, ',')
			line = append(line, name...)
			line = append(line, '=')
			line = strconv.AppendFloat(line, d.Seconds(), 'f', 5, 64)
		}
	}
	attr("HOLD-BACK", p.HoldBack)
	attr("PART-HOLD-BACK", p.PartHoldBack)
	attr("CAN-SKIP-UNTIL", p.CanSkipUntil)
	line = append(line, '\n')

	i := bytes.Index(b, []byte("#EXT-X-TARGETDURATION:"))
	if i < 0 {
		return b
	}
	i += bytes.IndexByte(b[i:], '\n') + 1
	out := make([]byte, 0, len(b)+len(line))
	out = append(out, b[:i]...)
	out = append(out, line...)
	return append(out, b[i:]...)
}

// addTrailingSegmentTags inserts the tags that belong to the segment in
// progress (PROGRAM-DATE-TIME, DISCONTINUITY) before its first EXT-X-PART, as
// §4.4.4.9 requires; gohlslib's model has no place for them.
func (p *Playlist) addTrailingSegmentTags(b []byte) []byte {
	if len(p.Parts) == 0 || (p.NextProgramDateTime.IsZero() && !p.NextPartDiscontinuity) {
		return b
	}
	first := []byte("#EXT-X-PART:DURATION=")
	// The in-progress parts follow the last segment URI line; find the first
	// part tag after the last EXTINF.
	start := bytes.LastIndex(b, []byte("#EXTINF:"))
	if start < 0 {
		start = 0
	}
	i := bytes.Index(b[start:], first)
	if i < 0 {
		return b
	}
	i += start
	var tags []byte
	if p.NextPartDiscontinuity {
		tags = append(tags, "#EXT-X-DISCONTINUITY\n"...)
	}
	if !p.NextProgramDateTime.IsZero() {
		tags = append(tags, "#EXT-X-PROGRAM-DATE-TIME:"...)
		tags = p.NextProgramDateTime.UTC().AppendFormat(tags, "2006-01-02T15:04:05.999Z07:00")
		tags = append(tags, '\n')
	}
	out := make([]byte, 0, len(b)+len(tags))
	out = append(out, b[:i]...)
	out = append(out, tags...)
	out = append(out, b[i:]...)
	return out
}

func mediaPart(p Part) *playlist.MediaPart {
	return &playlist.MediaPart{Duration: p.Duration, URI: p.URI, Independent: p.Independent}
}

func ptr[T any](v T) *T { return &v }
