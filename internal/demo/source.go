// Package demo provides the built-in live test broadcast used by
// `amphi demo`: a short AAC clip looped forever in real time.
package demo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// defaultClip is the clip played when Source.Clip is nil: a spoken sentence,
// one second of a 440 Hz tone and a short silence, as ADTS AAC-LC, 48 kHz,
// mono. Regenerate it with makeclip.sh.
//
//go:embed clip.aac
var defaultClip []byte

// samplesPerFrame is the number of PCM samples decoded from one AAC access
// unit (ADTS carries no 960-sample frames).
const samplesPerFrame = 1024

// Writer receives AAC access units (raw, no ADTS header).
type Writer interface {
	// WriteAAC is called with the presentation time of the first access
	// unit and the access units themselves. The access units are shared
	// with the clip and reused on every loop: they must not be modified.
	WriteAAC(pts time.Duration, aus [][]byte) error
}

// Source loops an ADTS AAC clip forever, paced by the wall clock, with
// continuous timestamps across loops.
type Source struct {
	// Clip is an ADTS AAC stream. Default: the embedded clip (go:embed clip.aac).
	Clip []byte
}

// Config returns the audio configuration of the clip, taken from its first
// ADTS header. It fails if the clip cannot be parsed or its packets
// disagree on the configuration.
func (s *Source) Config() (*mpeg4audio.AudioSpecificConfig, error) {
	c, err := parseClip(s.clip())
	if err != nil {
		return nil, err
	}
	return &c.config, nil
}

// Run writes the clip to w one access unit per call, in real time, looping
// seamlessly until ctx ends, and then returns ctx.Err(). Frame n carries the
// timestamp of n*1024 samples and is written at that offset from the moment
// Run started; frames that are late (because w blocked, say) are written
// immediately so that the stream catches up. Run fails, without writing
// anything, if the clip is invalid, and stops with a wrapped error as soon
// as w.WriteAAC fails.
func (s *Source) Run(ctx context.Context, w Writer) error {
	c, err := parseClip(s.clip())
	if err != nil {
		return err
	}

	p := newPacer()
	defer p.stop()

	rate := int64(c.config.SampleRate)
	for n := int64(0); ; n++ {
		pts := samplesToDuration(n*samplesPerFrame, rate)
		if err := p.waitUntil(ctx, pts); err != nil {
			return err
		}
		au := c.aus[n%int64(len(c.aus))]
		if err := w.WriteAAC(pts, [][]byte{au}); err != nil {
			return fmt.Errorf("demo: write AAC frame %d (pts %v): %w", n, pts, err)
		}
	}
}

func (s *Source) clip() []byte {
	if s.Clip == nil {
		return defaultClip
	}
	return s.Clip
}

// clip is a parsed ADTS stream.
type clip struct {
	config mpeg4audio.AudioSpecificConfig
	aus    [][]byte // raw access units, in order; never empty
}

// parseClip splits an ADTS stream into access units and checks that all of
// its packets share one configuration. The access units alias buf.
func parseClip(buf []byte) (*clip, error) {
	if len(buf) == 0 {
		return nil, errors.New("demo: clip is empty")
	}

	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(buf); err != nil {
		return nil, fmt.Errorf("demo: clip is not a valid ADTS AAC stream: %w", err)
	}

	first := pkts[0]
	if first.ChannelConfig == 0 {
		return nil, errors.New("demo: clip has channel configuration 0 (layout in a PCE), which is not supported")
	}

	c := &clip{
		config: mpeg4audio.AudioSpecificConfig{
			Type:          first.Type,
			SampleRate:    first.SampleRate,
			ChannelConfig: first.ChannelConfig,
		},
		aus: make([][]byte, len(pkts)),
	}
	for i, pkt := range pkts {
		if pkt.Type != first.Type || pkt.SampleRate != first.SampleRate ||
			pkt.ChannelConfig != first.ChannelConfig {
			return nil, fmt.Errorf("demo: clip changes configuration at ADTS packet %d: %s, but packet 0 is %s",
				i, describe(pkt), describe(first))
		}
		c.aus[i] = pkt.AU
	}
	return c, nil
}

// describe summarises the configuration carried by an ADTS header.
func describe(pkt *mpeg4audio.ADTSPacket) string {
	return fmt.Sprintf("object type %d, %d Hz, channel configuration %d",
		pkt.Type, pkt.SampleRate, pkt.ChannelConfig)
}

// samplesToDuration converts a sample count at the given rate to a duration,
// rounding down. Splitting off whole seconds keeps the intermediate product
// small, so the result is exact and never overflows before time.Duration
// itself would (about 292 years).
func samplesToDuration(samples, rate int64) time.Duration {
	secs, rem := samples/rate, samples%rate
	return time.Duration(secs)*time.Second + time.Duration(rem)*time.Second/time.Duration(rate)
}

// pacer sleeps until given offsets from the moment it was created.
type pacer struct {
	start time.Time
	timer *time.Timer
}

func newPacer() *pacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pacer{start: time.Now(), timer: t}
}

// waitUntil blocks until offset d from the start, returning at once if that
// time has passed, and returns ctx.Err() if ctx ends first.
func (p *pacer) waitUntil(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wait := time.Until(p.start.Add(d))
	if wait <= 0 {
		return nil
	}
	p.timer.Reset(wait)
	select {
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	case <-p.timer.C:
		return nil
	}
}

func (p *pacer) stop() { p.timer.Stop() }
