package origin

import (
	"fmt"
	"net/url"
	"time"

	"github.com/amphi-live/amphi/internal/httpserve"
	"github.com/amphi-live/amphi/segmenter"
)

// Config is the origin's configuration. The YAML keys are those of
// configs/origin.yaml; each field's default is given in its comment.
type Config struct {
	// Listen is the HTTP address for playback and HTTP ingest. Default ":8080".
	Listen string `yaml:"listen"`
	// Data is the directory for the origin's state. Default "data".
	Data string `yaml:"data"`
	// LogLevel is one of debug, info, warn, error. Default "info".
	LogLevel string `yaml:"log_level"`
	// Connections is how client connections are served: "loops" (tasks of
	// one event loop per CPU) or "goroutines" (one each). Default "loops".
	Connections string `yaml:"connections"`
	// Segmenter sets part and segment durations.
	Segmenter SegmenterConfig `yaml:"segmenter"`
	// Player configures the page at /live/NAME/.
	Player PlayerConfig `yaml:"player"`
	// Ingest configures publishers.
	Ingest IngestConfig `yaml:"ingest"`
	// RTMP configures RTMP ingest (OBS, ffmpeg -f flv).
	RTMP RTMPConfig `yaml:"rtmp"`
	// API configures the admin API under /api/v1/.
	API APIConfig `yaml:"api"`
}

// RTMPConfig configures RTMP ingest.
type RTMPConfig struct {
	// Listen is the RTMP address; "" turns RTMP off. Default ":1935".
	Listen string `yaml:"listen"`
}

// APIConfig configures the admin API.
type APIConfig struct {
	// Token is the bearer token the admin API requires; AMPHI_TOKEN also sets
	// it. Default "" (the API refuses every request until a token is set).
	Token string `yaml:"token"`
}

// SegmenterConfig picks the part and segment durations.
type SegmenterConfig struct {
	// Preset is low, balanced or scale. Default "balanced".
	Preset string `yaml:"preset"`
	// PartDuration overrides the preset's part duration when set ("200ms").
	// Default "" (use the preset).
	PartDuration Duration `yaml:"part_duration"`
	// SegmentDuration overrides the preset's segment duration when set.
	// Default "" (use the preset).
	SegmentDuration Duration `yaml:"segment_duration"`
	// Window is the number of segments listed in a media playlist.
	// Default 0 (derived: at least 7 segments and 12 target durations).
	Window int `yaml:"window"`
}

// PlayerConfig configures the player page.
type PlayerConfig struct {
	// HLSJSURL is where the page loads hls.js from in browsers without native
	// HLS. Default "https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js".
	HLSJSURL string `yaml:"hlsjs_url"`
}

// IngestConfig bounds HTTP ingest.
type IngestConfig struct {
	// ReadTimeout ends an ingest that sends nothing for this long. Default "10s".
	ReadTimeout Duration `yaml:"read_timeout"`
	// MaxStreams caps concurrent live streams. Default 100.
	MaxStreams int `yaml:"max_streams"`
	// ReconnectGrace is how long a broadcast whose publisher dropped shows
	// "reconnecting" before "ingest lost". A publisher that returns, within
	// it or later, continues the same playlist. Default "30s".
	ReconnectGrace Duration `yaml:"reconnect_grace"`
	// Open accepts publishers for any name without a stream key, for
	// development. Default false: broadcasts are started over the admin API
	// and publishers need their stream key.
	Open bool `yaml:"open"`
}

// DefaultConfig returns the built-in defaults; configs/origin.yaml is the same
// values written out (a test keeps them equal).
func DefaultConfig() Config {
	return Config{
		Listen:      ":8080",
		Data:        "data",
		LogLevel:    "info",
		Connections: httpserve.ConnLoops,
		Segmenter:   SegmenterConfig{Preset: "balanced"},
		Player:      PlayerConfig{HLSJSURL: "https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js"},
		Ingest: IngestConfig{
			ReadTimeout:    Duration(10 * time.Second),
			MaxStreams:     100,
			ReconnectGrace: Duration(30 * time.Second),
		},
		RTMP: RTMPConfig{Listen: ":1935"},
	}
}

// Validate checks the configuration; errors name the offending key.
func (c *Config) Validate() error {
	if !httpserve.ValidAddr(c.Listen) {
		return fmt.Errorf("listen: %q is not a host:port address", c.Listen)
	}
	if c.Data == "" {
		return fmt.Errorf("data: must name a directory")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if err := httpserve.ValidConnections(c.Connections); err != nil {
		return err
	}
	if _, err := c.SegmenterSettings(); err != nil {
		return err
	}
	if c.Player.HLSJSURL != "" {
		if u, err := url.Parse(c.Player.HLSJSURL); err != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("player.hlsjs_url: %q is not an http(s) URL or a path", c.Player.HLSJSURL)
		}
	}
	if c.Ingest.ReadTimeout <= 0 {
		return fmt.Errorf("ingest.read_timeout: must be positive")
	}
	if c.Ingest.ReconnectGrace <= 0 {
		return fmt.Errorf("ingest.reconnect_grace: must be positive")
	}
	if c.RTMP.Listen != "" {
		if !httpserve.ValidAddr(c.RTMP.Listen) {
			return fmt.Errorf("rtmp.listen: %q is not a host:port address", c.RTMP.Listen)
		}
	}
	if c.Ingest.MaxStreams <= 0 {
		return fmt.Errorf("ingest.max_streams: must be positive")
	}
	return nil
}

// SegmenterSettings resolves the preset and overrides into a segmenter
// configuration.
func (c *Config) SegmenterSettings() (segmenter.Config, error) {
	sc, ok := segmenter.Presets[c.Segmenter.Preset]
	if !ok {
		return segmenter.Config{}, fmt.Errorf("segmenter.preset: %q is not one of low, balanced, scale", c.Segmenter.Preset)
	}
	if c.Segmenter.PartDuration != 0 {
		sc.PartDuration = time.Duration(c.Segmenter.PartDuration)
	}
	if c.Segmenter.SegmentDuration != 0 {
		sc.SegmentDuration = time.Duration(c.Segmenter.SegmentDuration)
	}
	if c.Segmenter.Window != 0 {
		sc.Window = c.Segmenter.Window
	}
	if err := sc.Validate(); err != nil {
		return segmenter.Config{}, fmt.Errorf("segmenter.%w", err)
	}
	return sc, nil
}
