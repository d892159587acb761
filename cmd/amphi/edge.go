package main

import (
	"github.com/spf13/cobra"

	"github.com/amphi-live/amphi/edge"
	"github.com/amphi-live/amphi/internal/config"
)

var edgeFlagKeys = map[string]string{
	"listen":     "listen",
	"upstream":   "upstreams",
	"cache-size": "cache_size",
	"log-level":  "log_level",
	"hlsjs-url":  "player.hlsjs_url",
}

func newEdgeCmd() *cobra.Command {
	var file string
	var flags edge.Config
	var pprofAddr *string
	cmd := &cobra.Command{
		Use:   "edge --upstream URL [--upstream URL2 ...]",
		Short: "Run an edge cache in front of an origin or another edge",
		Long: "Run an LL-HLS-aware edge cache. Listeners ask it for /live/NAME/...; it\n" +
			"follows each live playlist upstream with blocking reloads, fetches parts\n" +
			"ahead, collapses identical requests, and fails over between upstreams.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := edge.DefaultConfig()
			err := config.Load(&cfg, config.Source{
				File:      file,
				EnvPrefix: "AMPHI_EDGE_",
				Flags:     cmd.Flags(),
				FlagKeys:  edgeFlagKeys,
			})
			if err != nil {
				return usageError(err)
			}
			if err := cfg.Validate(); err != nil {
				return usageError(err)
			}
			e, err := edge.New(cfg, newLogger(cfg.LogLevel))
			if err != nil {
				return usageError(err)
			}
			ctx, stop := withSignals(cmd.Context())
			defer stop()
			if err := startPprof(ctx, *pprofAddr); err != nil {
				return err
			}
			return e.Run(ctx)
		},
	}
	d := edge.DefaultConfig()
	fs := cmd.Flags()
	pprofAddr = pprofFlag(fs)
	fs.StringVarP(&file, "config", "c", "", "YAML config file (see configs/edge.yaml)")
	fs.StringVar(&flags.Listen, "listen", d.Listen, "HTTP address for listeners")
	fs.StringSliceVar(&flags.Upstreams, "upstream", nil, "origin or parent edge URL (repeat for failover)")
	fs.Var(&flags.CacheSize, "cache-size", "media cache size (default "+d.CacheSize.String()+")")
	fs.StringVar(&flags.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&flags.Player.HLSJSURL, "hlsjs-url", d.Player.HLSJSURL, "where the player page loads hls.js from")
	return cmd
}
