package llhls

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// maxPlaylistSize bounds a playlist read from the network.
const maxPlaylistSize = 2 << 20

// ParsePlaylist reads a media playlist into the model, so that a cache can
// answer blocking requests and delta updates from it and render it again.
// It keeps what gohlslib's parser drops: HOLD-BACK, and the
// PROGRAM-DATE-TIME and DISCONTINUITY of the segment in progress.
func ParsePlaylist(b []byte) (*Playlist, error) {
	if len(b) > maxPlaylistSize {
		return nil, fmt.Errorf("playlist larger than %d bytes", maxPlaylistSize)
	}
	var m playlist.Media
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("malformed media playlist: %w", err)
	}
	if m.TargetDuration <= 0 || m.TargetDuration > 3600 {
		return nil, fmt.Errorf("malformed media playlist: target duration %d", m.TargetDuration)
	}
	if m.MediaSequence < 0 {
		return nil, fmt.Errorf("malformed media playlist: negative media sequence")
	}
	p := &Playlist{
		TargetDuration: m.TargetDuration,
		MediaSequence:  uint64(m.MediaSequence),
		Ended:          m.Endlist,
	}
	if m.PartInf != nil {
		p.PartTarget = m.PartInf.PartTarget
	}
	if sc := m.ServerControl; sc != nil {
		if sc.PartHoldBack != nil {
			p.PartHoldBack = *sc.PartHoldBack
		}
		if sc.CanSkipUntil != nil {
			p.CanSkipUntil = *sc.CanSkipUntil
		}
	}
	if m.Skip != nil {
		return nil, fmt.Errorf("a delta update cannot be used as a full playlist")
	}
	if m.DiscontinuitySequence != nil {
		p.HasDiscontinuity = true
		p.DiscontinuitySequence = uint64(max(0, *m.DiscontinuitySequence))
	}
	if m.Map != nil {
		p.MapURI = m.Map.URI
	}
	p.Segments = make([]Segment, len(m.Segments))
	for i, s := range m.Segments {
		seg := Segment{Duration: s.Duration, URI: s.URI, Discontinuity: s.Discontinuity}
		if s.DateTime != nil {
			seg.ProgramDateTime = s.DateTime.UTC()
		}
		if s.Discontinuity {
			p.HasDiscontinuity = true
		}
		for _, pt := range s.Parts {
			seg.Parts = append(seg.Parts, Part{Duration: pt.Duration, URI: pt.URI, Independent: pt.Independent})
		}
		p.Segments[i] = seg
	}
	for _, pt := range m.Parts {
		p.Parts = append(p.Parts, Part{Duration: pt.Duration, URI: pt.URI, Independent: pt.Independent})
	}
	if m.PreloadHint != nil && !m.Endlist {
		p.PreloadHint = m.PreloadHint.URI
	}
	for _, r := range m.RenditionReport {
		rr := RenditionReport{URI: r.URI, LastMSN: uint64(max(0, r.LastMSN)), LastPart: -1}
		if r.LastPart != nil {
			rr.LastPart = *r.LastPart
		}
		p.RenditionReports = append(p.RenditionReports, rr)
	}
	p.HoldBack, p.NextProgramDateTime, p.NextPartDiscontinuity = scanExtras(b)
	if err := p.checkURIs(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkURIs refuses URIs that could not be written back: a quote or a
// control character would break the quoted attributes (or lines) of the
// rendering that lower tiers read.
func (p *Playlist) checkURIs() error {
	bad := func(u string) bool {
		for i := 0; i < len(u); i++ {
			if c := u[i]; c == '"' || c < 0x20 || c == 0x7f {
				return true
			}
		}
		return false
	}
	uris := []string{p.MapURI, p.PreloadHint}
	for _, s := range p.Segments {
		uris = append(uris, s.URI)
		for _, pt := range s.Parts {
			uris = append(uris, pt.URI)
		}
	}
	for _, pt := range p.Parts {
		uris = append(uris, pt.URI)
	}
	for _, r := range p.RenditionReports {
		uris = append(uris, r.URI)
	}
	for _, u := range uris {
		if bad(u) {
			return fmt.Errorf("malformed media playlist: URI %q cannot be quoted", u)
		}
	}
	return nil
}

// scanExtras finds HOLD-BACK and the tags of the segment in progress: those
// after the last segment URI line.
func scanExtras(b []byte) (holdBack time.Duration, nextPDT time.Time, nextDisc bool) {
	for line := range bytes.Lines(b) {
		l := strings.TrimSpace(string(line))
		switch {
		case strings.HasPrefix(l, "#EXT-X-SERVER-CONTROL:"):
			for _, attr := range strings.Split(strings.TrimPrefix(l, "#EXT-X-SERVER-CONTROL:"), ",") {
				if v, ok := strings.CutPrefix(attr, "HOLD-BACK="); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && f < 3600 {
						holdBack = time.Duration(f * float64(time.Second))
					}
				}
			}
		case l != "" && l[0] != '#':
			nextPDT, nextDisc = time.Time{}, false // a segment closed
		case strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"):
			if t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:")); err == nil {
				nextPDT = t.UTC()
			}
		case l == "#EXT-X-DISCONTINUITY":
			nextDisc = true
		}
	}
	return holdBack, nextPDT, nextDisc
}
