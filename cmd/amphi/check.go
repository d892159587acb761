package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/amphi-live/amphi/internal/check"
)

// checkOptions are the flags of `amphi check`.
type checkOptions struct {
	duration    time.Duration
	json        bool
	strict503   bool
	expectCache bool
	timeout     time.Duration
	slack       time.Duration
}

func newCheckCmd() *cobra.Command { return checkCommand(&checkOptions{}) }

// checkCommand builds the command with its flags bound to o.
func checkCommand(o *checkOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check URL",
		Short: "Check an LL-HLS deployment against the low-latency rules, from outside",
		Long: "Follow URL (a multivariant or media playlist on an amphi origin or edge, a\n" +
			"CDN, or any LL-HLS server) for --duration as a low-latency player does, send\n" +
			"the requests players and caches send, and report each rule of the project's\n" +
			"LL-HLS profile as PASS, FAIL or SKIP with its evidence:\n\n" +
			"  " + strings.Join(check.Rules, ", ") + ".\n\n" +
			"Only URL's host is contacted. The exit status is 0 when no rule fails, 1 when\n" +
			"one fails or the URL cannot be checked, 2 for a usage error. --strict-503\n" +
			"also sends a hold the stream cannot meet and requires 503 (it takes up to 3\n" +
			"target durations; default on when --duration ≥ 3 × target duration + 2s).\n" +
			"--expect-cache makes a missing Age header a failure rather than a skip: use\n" +
			"it when URL is an edge or CDN.",
		Example: "  amphi check http://127.0.0.1:8080/live/demo/index.m3u8\n" +
			"  amphi check https://cdn.example.com/live/demo/index.m3u8 --expect-cache --duration 30s --json",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(cmd, args[0])
			if err != nil {
				return usageError(err)
			}
			ctx, stop := withSignals(cmd.Context())
			defer stop()
			return runCheck(ctx, cfg, o.json, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
		SilenceUsage: true,
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	f := cmd.Flags()
	f.DurationVarP(&o.duration, "duration", "d", check.DefaultDuration, "how long to follow the live playlist")
	f.BoolVar(&o.json, "json", false, "print the report as one JSON object instead of a table")
	f.BoolVar(&o.strict503, "strict-503", false, "require 503 for a hold that cannot be met (default: on when --duration allows it)")
	f.BoolVar(&o.expectCache, "expect-cache", false, "fail, not skip, the age rule when no answer shows a cache")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "limit for one non-blocking request")
	f.DurationVar(&o.slack, "slack", 0, "extra time allowed on every timing bound (slow links)")
	return cmd
}

// config checks the flags and builds the check's configuration.
func (o *checkOptions) config(cmd *cobra.Command, url string) (check.Config, error) {
	cfg := check.Config{
		URL:         url,
		Duration:    o.duration,
		ExpectCache: o.expectCache,
		Timeout:     o.timeout,
		Slack:       o.slack,
	}
	switch {
	case !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://"):
		return cfg, fmt.Errorf("URL %q: want an http:// or https:// playlist URL", url)
	case o.duration <= 0:
		return cfg, fmt.Errorf("--duration must be positive, got %s", o.duration)
	case o.timeout <= 0:
		return cfg, fmt.Errorf("--timeout must be positive, got %s", o.timeout)
	case o.slack < 0:
		return cfg, fmt.Errorf("--slack must not be negative, got %s", o.slack)
	}
	if cmd.Flags().Changed("strict-503") {
		cfg.Strict503 = check.Off
		if o.strict503 {
			cfg.Strict503 = check.On
		}
	}
	return cfg, nil
}

// runCheck runs the check, prints the report (a table, or JSON), and turns
// failed rules into exit status 1.
func runCheck(ctx context.Context, cfg check.Config, asJSON bool, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "amphi check: following %s for %s\n", cfg.URL, cfg.Duration)
	rep, err := check.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d rules failed", rep.Failed, len(rep.Rules))}
	}
	return nil
}
