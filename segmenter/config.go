package segmenter

import (
	"fmt"
	"time"
)

// Config sets the segmenter's durations. Part and segment durations are
// nominal: parts hold a whole number of codec frames, so the real part
// duration is the nominal one rounded up to a frame boundary, and a segment
// holds a whole number of parts.
type Config struct {
	// PartDuration is the nominal part duration. Default 500ms.
	PartDuration time.Duration
	// SegmentDuration is the nominal segment duration. Default 2s.
	SegmentDuration time.Duration
	// Window is the number of complete segments listed in the media playlist.
	// Default 0: derived, at least 7 segments and 12 target durations, so
	// delta updates (skip boundary 6 × target duration) skip something.
	Window int
}

// Presets are the documented trade-offs between latency and requests per
// listener per second (LLHLS.md §6).
var Presets = map[string]Config{
	// ~0.2 s parts: about 1 s behind live, ~10 requests per listener per second.
	"low": {PartDuration: 200 * time.Millisecond, SegmentDuration: time.Second},
	// ~0.5 s parts: about 2 s behind live, ~4 requests per listener per second.
	"balanced": {PartDuration: 500 * time.Millisecond, SegmentDuration: 2 * time.Second},
	// ~1 s parts: about 4 s behind live, ~2 requests per listener per second.
	"scale": {PartDuration: time.Second, SegmentDuration: 4 * time.Second},
}

// withDefaults fills the zero durations with the documented defaults.
func (c Config) withDefaults() Config {
	if c.PartDuration == 0 {
		c.PartDuration = 500 * time.Millisecond
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = 2 * time.Second
	}
	return c
}

// Validate checks the durations and names the field at fault; zero
// durations take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.PartDuration < 20*time.Millisecond || c.PartDuration > 5*time.Second:
		return fmt.Errorf("part_duration: %v is outside 20ms..5s", c.PartDuration)
	case c.SegmentDuration < c.PartDuration:
		return fmt.Errorf("segment_duration: %v is shorter than part_duration %v", c.SegmentDuration, c.PartDuration)
	case c.SegmentDuration > 12*time.Second:
		return fmt.Errorf("segment_duration: %v is longer than 12s", c.SegmentDuration)
	case c.Window != 0 && c.Window < 3:
		return fmt.Errorf("window: %d segments is fewer than 3", c.Window)
	case c.Window > 1000:
		return fmt.Errorf("window: %d segments is more than 1000", c.Window)
	}
	return nil
}
