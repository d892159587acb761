package segmenter

import (
	"fmt"

	"github.com/bluenviron/gohlslib/v2/pkg/codecparams"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// Codec is the audio codec of a broadcast: *AAC or *Opus.
type Codec interface {
	// String names the codec for logs and status output.
	String() string
	timescale() uint32
	// nominalFrame is the usual number of samples (in timescale units) per
	// frame, from which part durations are rounded to frame boundaries.
	nominalFrame() int64
	// frameSamples returns the duration of one access unit in timescale units.
	frameSamples(au []byte) int64
	fmp4Codec() fmp4.Codec
	hlsCodec() hlscodecs.Codec
	channels() int
}

// AAC is MPEG-4 Audio (AAC-LC, HE-AAC, HE-AACv2).
type AAC struct {
	Config *mpeg4audio.AudioSpecificConfig
}

func (c *AAC) String() string {
	switch c.Config.Type {
	case mpeg4audio.ObjectTypeAACLC:
		return fmt.Sprintf("AAC-LC %d Hz %dch", c.Config.SampleRate, c.channels())
	case mpeg4audio.ObjectTypeSBR:
		return fmt.Sprintf("HE-AAC %d Hz %dch", c.Config.SampleRate, c.channels())
	case mpeg4audio.ObjectTypePS:
		return fmt.Sprintf("HE-AACv2 %d Hz %dch", c.Config.SampleRate, c.channels())
	}
	return fmt.Sprintf("AAC (object type %d) %d Hz %dch", c.Config.Type, c.Config.SampleRate, c.channels())
}

// The track runs at the core sample rate: with SBR every access unit still
// carries 1024 (or 960) core samples.
func (c *AAC) timescale() uint32 { return uint32(c.Config.SampleRate) }

func (c *AAC) nominalFrame() int64 {
	if c.Config.FrameLengthFlag {
		return 960
	}
	return 1024
}

func (c *AAC) frameSamples([]byte) int64 { return c.nominalFrame() }

func (c *AAC) fmp4Codec() fmp4.Codec { return &fmp4.CodecMPEG4Audio{Config: *c.Config} }

func (c *AAC) hlsCodec() hlscodecs.Codec { return &hlscodecs.MPEG4Audio{Config: *c.Config} }

func (c *AAC) channels() int {
	switch {
	case c.Config.ChannelConfig == 7:
		return 8
	case c.Config.ChannelConfig > 0:
		return int(c.Config.ChannelConfig)
	case c.Config.ChannelCount > 0:
		return c.Config.ChannelCount
	}
	return 2
}

// Opus is Opus audio, always at 48 kHz.
type Opus struct {
	Channels int
}

func (c *Opus) String() string { return fmt.Sprintf("Opus 48000 Hz %dch", c.channels()) }

func (c *Opus) timescale() uint32 { return 48000 }

// 20 ms, the frame size nearly every encoder uses for speech and music.
func (c *Opus) nominalFrame() int64 { return 960 }

func (c *Opus) frameSamples(au []byte) int64 { return opus.PacketDuration2(au) }

func (c *Opus) fmp4Codec() fmp4.Codec { return &fmp4.CodecOpus{ChannelCount: c.channels()} }

func (c *Opus) hlsCodec() hlscodecs.Codec { return &hlscodecs.Opus{ChannelCount: c.channels()} }

func (c *Opus) channels() int {
	if c.Channels <= 0 {
		return 2
	}
	return c.Channels
}

// CodecsAttribute returns the CODECS value of c for the multivariant
// playlist: mp4a.40.2, mp4a.40.5, mp4a.40.29 or opus.
func CodecsAttribute(c Codec) string {
	return codecparams.Marshal(c.hlsCodec())
}

// Channels returns the channel count of c, for the CHANNELS attribute.
func Channels(c Codec) int { return c.channels() }

func validateCodec(c Codec) error {
	switch c := c.(type) {
	case *AAC:
		if c == nil || c.Config == nil {
			return fmt.Errorf("codec: AAC without an AudioSpecificConfig")
		}
		if c.Config.SampleRate < 8000 || c.Config.SampleRate > 96000 {
			return fmt.Errorf("codec: AAC sample rate %d Hz is not supported", c.Config.SampleRate)
		}
	case *Opus:
		if c == nil {
			return fmt.Errorf("codec: nil Opus")
		}
	default:
		return fmt.Errorf("codec: %T is not supported; amphi carries AAC and Opus", c)
	}
	return nil
}
