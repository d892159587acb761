package edge

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/amphi-live/amphi/internal/config"
)

const confFile = "../configs/edge.yaml"

// normalised makes a nil and an empty upstream list compare equal: the file
// writes `upstreams: []` to document the key, the default leaves it nil.
func normalised(c Config) Config {
	if len(c.Upstreams) == 0 {
		c.Upstreams = nil
	}
	return c
}

// TestDefaultConfFile keeps configs/edge.yaml equal to DefaultConfig.
func TestDefaultConfFile(t *testing.T) {
	var c Config
	require.NoError(t, config.Load(&c, config.Source{File: confFile}))
	require.Equal(t, normalised(DefaultConfig()), normalised(c))

	// The file's only gap is the required upstream list: with one, it is a
	// valid configuration.
	c.Upstreams = []string{"http://127.0.0.1:8080"}
	require.NoError(t, c.Validate())
}

// TestConfFileHasEveryKey checks that configs/edge.yaml writes out (and
// comments) every key, so that it documents them all.
func TestConfFileHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(confFile)
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &doc))
	require.Equal(t, yaml.DocumentNode, doc.Kind)
	have := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			require.NotEmpty(t, k.HeadComment, "key %s%s has no comment above it", prefix, k.Value)
			if v.Kind == yaml.MappingNode {
				walk(v, prefix+k.Value+".")
				continue
			}
			have[prefix+k.Value] = true
		}
	}
	walk(doc.Content[0], "")
	keys := config.Keys(&Config{})
	require.NotEmpty(t, keys)
	for _, k := range keys {
		require.True(t, have[k], "configs/edge.yaml lacks key %s", k)
	}
	require.Len(t, have, len(keys), "configs/edge.yaml has keys Config does not: %v vs %v", have, keys)
}

// TestConfFileEnvOverride checks the documented environment override of the
// example file (AMPHI_EDGE_ + upper snake key).
func TestConfFileEnvOverride(t *testing.T) {
	var c Config
	require.NoError(t, config.Load(&c, config.Source{
		File:      confFile,
		EnvPrefix: "AMPHI_EDGE_",
		Environ: []string{
			"AMPHI_EDGE_UPSTREAMS=http://a:1,http://b:2",
			"AMPHI_EDGE_CACHE_SIZE=64MiB",
			"AMPHI_EDGE_NEGATIVE_TTL=500ms",
			"AMPHI_EDGE_PLAYER_HLSJS_URL=/static/hls.js",
		},
	}))
	want := DefaultConfig()
	want.Upstreams = []string{"http://a:1", "http://b:2"}
	want.CacheSize = 64 << 20
	want.NegativeTTL = config.Duration(500 * time.Millisecond)
	want.Player.HLSJSURL = "/static/hls.js"
	require.Equal(t, want, c)
	require.NoError(t, c.Validate())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Config)
		key  string // "" when the configuration is valid
	}{
		{"one upstream", func(c *Config) {}, ""},
		{"two upstreams", func(c *Config) { c.Upstreams = append(c.Upstreams, "https://origin-b.example:8443") }, ""},
		{"upstream with {name}", func(c *Config) { c.Upstreams = []string{"http://mediamtx:8888/{name}/"} }, ""},
		{"listen loopback any port", func(c *Config) { c.Listen = "127.0.0.1:0" }, ""},
		{"smallest cache", func(c *Config) { c.CacheSize = 1 << 20 }, ""},

		{"listen without port", func(c *Config) { c.Listen = "8081" }, "listen"},
		{"empty listen", func(c *Config) { c.Listen = "" }, "listen"},
		{"listen port not a number", func(c *Config) { c.Listen = ":http-alt" }, "listen"},
		{"listen port too big", func(c *Config) { c.Listen = ":65536" }, "listen"},
		{"no upstreams", func(c *Config) { c.Upstreams = nil }, "upstreams"},
		{"empty upstream list", func(c *Config) { c.Upstreams = []string{} }, "upstreams"},
		{"upstream ftp", func(c *Config) { c.Upstreams = []string{"ftp://origin"} }, "upstreams"},
		{"upstream without host", func(c *Config) { c.Upstreams = []string{"http:///live"} }, "upstreams"},
		{"upstream with query", func(c *Config) { c.Upstreams = []string{"http://origin?token=x"} }, "upstreams"},
		{"upstream not a URL", func(c *Config) { c.Upstreams = []string{"http://[::1"} }, "upstreams"},
		{"second upstream bad", func(c *Config) { c.Upstreams = []string{"http://a", "origin-b:8080"} }, "upstreams"},
		{"cache too small", func(c *Config) { c.CacheSize = 1<<20 - 1 }, "cache_size"},
		{"zero fetch_timeout", func(c *Config) { c.FetchTimeout = 0 }, "fetch_timeout"},
		{"negative fetch_timeout", func(c *Config) { c.FetchTimeout = config.Duration(-time.Second) }, "fetch_timeout"},
		{"zero tracker_idle", func(c *Config) { c.TrackerIdle = 0 }, "tracker_idle"},
		{"zero negative_ttl", func(c *Config) { c.NegativeTTL = 0 }, "negative_ttl"},
		{"zero max_conns", func(c *Config) { c.MaxConns = 0 }, "max_conns"},
		{"negative max_conns", func(c *Config) { c.MaxConns = -1 }, "max_conns"},
		{"bad log_level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"empty log_level", func(c *Config) { c.LogLevel = "" }, "log_level"},
		{"bad connections", func(c *Config) { c.Connections = "threads" }, "connections"},
		{"empty connections", func(c *Config) { c.Connections = "" }, "connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Upstreams = []string{"http://127.0.0.1:8080"}
			tt.mod(&c)
			err := c.Validate()
			if tt.key == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tt.key+":"), "error %q does not name key %s", err, tt.key)
			// New refuses what Validate refuses, with the same error.
			_, nerr := New(c, nil)
			require.EqualError(t, nerr, err.Error())
		})
	}
}
