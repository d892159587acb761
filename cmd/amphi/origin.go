package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/amphi-live/amphi/internal/config"
	"github.com/amphi-live/amphi/origin"
)

// originFlags are the flags shared by `origin` and `demo`, each bound to a
// config key so that flags override file and environment.
type originFlags struct {
	file  string
	pprof *string
	cfg   origin.Config // flag values land here, then are applied by key
}

var originFlagKeys = map[string]string{
	"listen":           "listen",
	"data":             "data",
	"log-level":        "log_level",
	"preset":           "segmenter.preset",
	"part-duration":    "segmenter.part_duration",
	"segment-duration": "segmenter.segment_duration",
	"hlsjs-url":        "player.hlsjs_url",
	"rtmp":             "rtmp.listen",
	"open-ingest":      "ingest.open",
}

func (f *originFlags) register(fs *pflag.FlagSet) {
	d := origin.DefaultConfig()
	fs.StringVarP(&f.file, "config", "c", "", "YAML config file (see configs/origin.yaml)")
	f.pprof = pprofFlag(fs)
	fs.StringVar(&f.cfg.Listen, "listen", d.Listen, "HTTP address for playback and ingest")
	fs.StringVar(&f.cfg.Data, "data", d.Data, "data directory")
	fs.StringVar(&f.cfg.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&f.cfg.Segmenter.Preset, "preset", d.Segmenter.Preset,
		"segmenter preset: low (~0.2s parts), balanced (~0.5s), scale (~1s)")
	fs.Var(&f.cfg.Segmenter.PartDuration, "part-duration", "override the preset's part duration (e.g. 200ms)")
	fs.Var(&f.cfg.Segmenter.SegmentDuration, "segment-duration", "override the preset's segment duration (e.g. 2s)")
	fs.StringVar(&f.cfg.Player.HLSJSURL, "hlsjs-url", d.Player.HLSJSURL, "where the player page loads hls.js from")
	fs.StringVar(&f.cfg.RTMP.Listen, "rtmp", d.RTMP.Listen, `RTMP ingest address ("" turns RTMP off)`)
	fs.BoolVar(&f.cfg.Ingest.Open, "open-ingest", d.Ingest.Open, "accept publishers for any name without a stream key (development only)")
}

// load builds the configuration: defaults, file, AMPHI_* environment, flags;
// then prepare (if any) fills in what depends on them, and it is validated.
func (f *originFlags) load(fs *pflag.FlagSet, defaults origin.Config, prepare func(*origin.Config) error) (origin.Config, error) {
	cfg := defaults
	err := config.Load(&cfg, config.Source{
		File:      f.file,
		EnvPrefix: "AMPHI_",
		Flags:     fs,
		FlagKeys:  originFlagKeys,
	})
	if err != nil {
		return cfg, usageError(err)
	}
	if cfg.API.Token == "" {
		cfg.API.Token = os.Getenv("AMPHI_TOKEN")
	}
	if prepare != nil {
		if err := prepare(&cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError(err)
	}
	return cfg, nil
}

func newOriginCmd() *cobra.Command {
	var f originFlags
	cmd := &cobra.Command{
		Use:   "origin",
		Short: "Run the origin: HTTP ingest in, LL-HLS out",
		Long: "Run the origin. Publish MPEG-TS to /ingest/NAME, for example\n" +
			"  ffmpeg -re -i IN -c:a aac -b:a 64k -f mpegts -method PUT http://HOST:8080/ingest/NAME\n" +
			"and listen at http://HOST:8080/live/NAME/index.m3u8 (player page at /live/NAME/).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd.Flags(), origin.DefaultConfig(), nil)
			if err != nil {
				return err
			}
			srv, err := origin.New(cfg, newLogger(cfg.LogLevel))
			if err != nil {
				return usageError(err)
			}
			ctx, stop := withSignals(cmd.Context())
			defer stop()
			if err := startPprof(ctx, *f.pprof); err != nil {
				return err
			}
			return srv.Run(ctx)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// withSignals is the context every long-running command runs under.
func withSignals(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
