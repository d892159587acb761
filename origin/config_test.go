package origin

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/amphi-live/amphi/internal/config"
)

const confFile = "../configs/origin.yaml"

// TestDefaultConfFile keeps configs/origin.yaml equal to DefaultConfig.
func TestDefaultConfFile(t *testing.T) {
	var c Config
	require.NoError(t, config.Load(&c, config.Source{File: confFile}))
	require.Equal(t, DefaultConfig(), c)
	require.NoError(t, c.Validate())
}

// TestConfFileHasEveryKey checks that configs/origin.yaml writes out every
// key, so that it documents them all.
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
		require.True(t, have[k], "configs/origin.yaml lacks key %s", k)
	}
	require.Len(t, have, len(keys))
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Config)
		key  string // "" when the configuration is valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"preset low", func(c *Config) { c.Segmenter.Preset = "low" }, ""},
		{"overrides", func(c *Config) {
			c.Segmenter.PartDuration = Duration(200 * time.Millisecond)
			c.Segmenter.SegmentDuration = Duration(time.Second)
			c.Segmenter.Window = 10
		}, ""},
		{"hls.js from a path", func(c *Config) { c.Player.HLSJSURL = "/static/hls.min.js" }, ""},
		{"bad listen", func(c *Config) { c.Listen = "8080" }, "listen"},
		{"empty listen", func(c *Config) { c.Listen = "" }, "listen"},
		{"bad log_level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"bad connections", func(c *Config) { c.Connections = "threads" }, "connections"},
		{"unknown preset", func(c *Config) { c.Segmenter.Preset = "ultra" }, "segmenter.preset"},
		{"part_duration 5ms", func(c *Config) { c.Segmenter.PartDuration = Duration(5 * time.Millisecond) }, "part_duration"},
		{"segment shorter than part", func(c *Config) {
			c.Segmenter.PartDuration = Duration(time.Second)
			c.Segmenter.SegmentDuration = Duration(500 * time.Millisecond)
		}, "segment_duration"},
		{"window too small", func(c *Config) { c.Segmenter.Window = 2 }, "window"},
		{"bad hlsjs_url scheme", func(c *Config) { c.Player.HLSJSURL = "ftp://example.com/hls.js" }, "player.hlsjs_url"},
		{"unparsable hlsjs_url", func(c *Config) { c.Player.HLSJSURL = "http://[::1" }, "player.hlsjs_url"},
		{"zero read_timeout", func(c *Config) { c.Ingest.ReadTimeout = 0 }, "ingest.read_timeout"},
		{"zero max_streams", func(c *Config) { c.Ingest.MaxStreams = 0 }, "ingest.max_streams"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.key == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.key)
		})
	}
}
