package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// exitError carries a process exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks a mistake on the command line or in configuration: exit 2.
func usageError(err error) error { return &exitError{code: 2, err: err} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "amphi",
		Short: "Live-audio LL-HLS origin and edge cache",
		Long: "amphi turns a live audio stream into Low-Latency HLS and serves it to\n" +
			"players (Safari, hls.js, ffmpeg, VLC) from an origin and edge caches.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newOriginCmd(), newEdgeCmd(), newDemoCmd(), newBroadcastCmd(), newCheckCmd(), newLoadtestCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "amphi", buildVersion())
			return nil
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" {
			return bi.Main.Version
		}
	}
	return "dev"
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
