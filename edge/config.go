package edge

import (
	"fmt"
	"net/url"
	"time"

	"github.com/amphi-live/amphi/internal/config"
	"github.com/amphi-live/amphi/internal/httpserve"
)

// Config is the edge's configuration. The YAML keys are those of
// configs/edge.yaml; each field's default is given in its comment.
type Config struct {
	// Listen is the HTTP address listeners connect to. Default ":8081".
	Listen string `yaml:"listen"`
	// Upstreams are the origins or parent edges, tried in order; the edge
	// fails over to the next on a refused connection, a 5xx or a timeout.
	// A URL maps /live/NAME/FILE to URL/live/NAME/FILE, or, when it holds
	// {name}, to the URL with NAME substituted and FILE appended.
	// Default: none (required).
	Upstreams []string `yaml:"upstreams"`
	// CacheSize bounds the media cache. Default "512MiB".
	CacheSize config.ByteSize `yaml:"cache_size"`
	// FetchTimeout bounds one non-blocking upstream request (a blocking
	// playlist request gets 3 target durations more). Default "3s".
	FetchTimeout config.Duration `yaml:"fetch_timeout"`
	// TrackerIdle stops following a playlist nobody asked for this long.
	// Default "30s".
	TrackerIdle config.Duration `yaml:"tracker_idle"`
	// NegativeTTL is how long a broadcast the upstream does not know is
	// answered 404 without asking again. Default "2s".
	NegativeTTL config.Duration `yaml:"negative_ttl"`
	// MaxConns caps concurrent client connections. Default 100000.
	MaxConns int `yaml:"max_conns"`
	// Connections is how client connections are served: "loops" (tasks of
	// one event loop per CPU) or "goroutines" (one each). Default "loops".
	Connections string `yaml:"connections"`
	// LogLevel is one of debug, info, warn, error. Default "info".
	LogLevel string `yaml:"log_level"`
	// Player configures the page at /live/NAME/.
	Player PlayerConfig `yaml:"player"`
}

// PlayerConfig configures the player page.
type PlayerConfig struct {
	// HLSJSURL is where the page loads hls.js from in browsers without
	// native HLS. Default "https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js".
	HLSJSURL string `yaml:"hlsjs_url"`
}

// DefaultConfig returns the built-in defaults; configs/edge.yaml is the same
// values written out (a test keeps them equal).
func DefaultConfig() Config {
	return Config{
		Listen:       ":8081",
		CacheSize:    512 << 20,
		FetchTimeout: config.Duration(3 * time.Second),
		TrackerIdle:  config.Duration(30 * time.Second),
		NegativeTTL:  config.Duration(2 * time.Second),
		MaxConns:     100000,
		Connections:  httpserve.ConnLoops,
		LogLevel:     "info",
		Player:       PlayerConfig{HLSJSURL: "https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js"},
	}
}

// Validate checks the configuration; errors name the offending key.
func (c *Config) Validate() error {
	if !httpserve.ValidAddr(c.Listen) {
		return fmt.Errorf("listen: %q is not a host:port address", c.Listen)
	}
	if len(c.Upstreams) == 0 {
		return fmt.Errorf("upstreams: at least one upstream URL is required (--upstream)")
	}
	for _, u := range c.Upstreams {
		b, err := url.Parse(u)
		if err != nil || (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" || b.RawQuery != "" {
			return fmt.Errorf("upstreams: %q is not an http(s) URL without a query", u)
		}
	}
	switch {
	case c.CacheSize < 1<<20:
		return fmt.Errorf("cache_size: %v is smaller than 1MiB", c.CacheSize)
	case c.FetchTimeout <= 0:
		return fmt.Errorf("fetch_timeout: must be positive")
	case c.TrackerIdle <= 0:
		return fmt.Errorf("tracker_idle: must be positive")
	case c.NegativeTTL <= 0:
		return fmt.Errorf("negative_ttl: must be positive")
	case c.MaxConns <= 0:
		return fmt.Errorf("max_conns: must be positive")
	}
	if err := httpserve.ValidConnections(c.Connections); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	return nil
}
