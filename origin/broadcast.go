package origin

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/amphi-live/amphi/internal/llhls"
	"github.com/amphi-live/amphi/segmenter"
)

// mediaPlaylistName is the file name of a broadcast's (single) media playlist.
const mediaPlaylistName = "audio.m3u8"

// firstSegments is how many complete segments a new broadcast's playlist
// has before it is served: hls.js in Chromium, joining during the very first
// segment, stalls at that segment's end until the second one completes (seen
// in the browser suite, internal/e2e).
const firstSegments = 2

// broadcast is one live session of a named stream: it stores what the
// segmenter produces and is the llhls.Stream the serving core reads.
type broadcast struct {
	name  string
	codec segmenter.Codec
	feed  *llhls.Feed
	now   func() time.Time

	mu      sync.RWMutex
	objects map[string]*llhls.Object

	multivariant atomic.Pointer[llhls.Object]
	ended        atomic.Bool
	endedAt      atomic.Int64 // unix nanoseconds
	bytesIn      atomic.Int64
}

func newBroadcast(name string, codec segmenter.Codec, now func() time.Time) *broadcast {
	return &broadcast{
		name:    name,
		codec:   codec,
		now:     now,
		feed:    llhls.NewFeed(llhls.NewSnapshot(&llhls.Playlist{}, now())),
		objects: make(map[string]*llhls.Object),
	}
}

// Publish implements segmenter.Sink. Objects are stored before the new
// playlist is published, so a woken waiter always finds what it announces.
func (b *broadcast) Publish(u segmenter.Update) {
	created := b.now()
	b.mu.Lock()
	for _, o := range u.Added {
		b.objects[o.Name] = &llhls.Object{Data: o.Data, ContentType: segmenter.ContentType, Created: created}
		b.bytesIn.Add(int64(len(o.Data)))
	}
	for _, name := range u.Removed {
		delete(b.objects, name)
	}
	b.mu.Unlock()

	if len(u.Playlist.Segments) < firstSegments && !u.Playlist.Ended {
		// Listeners wait (held) until the playlist is worth joining.
		return
	}
	if b.multivariant.Load() == nil {
		b.multivariant.Store(&llhls.Object{
			Data:        b.renderMultivariant(u.Playlist),
			ContentType: "application/vnd.apple.mpegurl",
			Created:     created,
		})
	}
	if u.Playlist.Ended {
		b.endedAt.Store(created.UnixNano())
		b.ended.Store(true)
	}
	b.feed.Publish(llhls.NewSnapshot(u.Playlist, created))
}

// renderMultivariant writes the multivariant playlist once the playlist is
// served, when its first segments give a measured bitrate.
func (b *broadcast) renderMultivariant(pl *llhls.Playlist) []byte {
	peak, avg := bandwidth(pl.Segments, b.objects, &b.mu)
	channels := strconv.Itoa(segmenter.Channels(b.codec))
	m := playlist.Multivariant{
		Version:             9,
		IndependentSegments: true,
		Variants: []*playlist.MultivariantVariant{{
			Bandwidth:        peak,
			AverageBandwidth: &avg,
			Codecs:           []string{segmenter.CodecsAttribute(b.codec)},
			Audio:            "audio",
			URI:              mediaPlaylistName,
		}},
		Renditions: []*playlist.MultivariantRendition{{
			Type:       playlist.MultivariantRenditionTypeAudio,
			GroupID:    "audio",
			Name:       "main",
			Autoselect: true,
			Default:    true,
			Channels:   &channels,
		}},
	}
	out, err := m.Marshal()
	if err != nil {
		// Marshal fails only on a malformed model, which we build ourselves.
		panic("origin: multivariant playlist: " + err.Error())
	}
	return out
}

// bandwidth estimates BANDWIDTH and AVERAGE-BANDWIDTH from the segments
// produced so far, with headroom for encoder variation.
func bandwidth(segs []llhls.Segment, objects map[string]*llhls.Object, mu *sync.RWMutex) (peak, avg int) {
	mu.RLock()
	defer mu.RUnlock()
	var total int
	var dur time.Duration
	for _, s := range segs {
		o := objects[s.URI]
		if o == nil || s.Duration <= 0 {
			continue
		}
		bits := len(o.Data) * 8
		rate := int(float64(bits) / s.Duration.Seconds())
		peak = max(peak, rate)
		total += bits
		dur += s.Duration
	}
	if dur > 0 {
		avg = int(float64(total) / dur.Seconds())
	}
	// Players pick variants by BANDWIDTH; 10% headroom covers VBR encoders.
	return max(peak*11/10, 1), max(avg, 1)
}

// Multivariant implements llhls.Stream.
func (b *broadcast) Multivariant() *llhls.Object { return b.multivariant.Load() }

// Primary implements llhls.Stream.
func (b *broadcast) Primary() *llhls.Feed { return b.feed }

// Playlist implements llhls.Stream.
func (b *broadcast) Playlist(_ context.Context, file string) *llhls.Feed {
	if file == mediaPlaylistName {
		return b.feed
	}
	return nil
}

// Media implements llhls.Stream.
func (b *broadcast) Media(_ context.Context, file string) *llhls.Object {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.objects[file]
}

// Hinted implements llhls.Stream.
func (b *broadcast) Hinted(file string) *llhls.Feed {
	if b.feed.Current().Playlist().PreloadHint == file {
		return b.feed
	}
	return nil
}

// position returns the live edge: the newest segment and part numbers
// (part -1 when none is listed).
func (b *broadcast) position() (msn uint64, part int) {
	msn, part, ok := b.feed.Current().LastPosition()
	if !ok {
		return 0, -1
	}
	return msn, part
}
