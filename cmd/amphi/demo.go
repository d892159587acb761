package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/amphi-live/amphi/internal/demo"
	"github.com/amphi-live/amphi/origin"
	"github.com/amphi-live/amphi/segmenter"
)

// demoName is the broadcast the demo source feeds.
const demoName = "demo"

func newDemoCmd() *cobra.Command {
	var f originFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run an origin with a built-in live test broadcast named demo",
		Long: "Run an origin that broadcasts a built-in looping clip as \"demo\".\n" +
			"Nothing else is needed: open the printed URL in a browser, or play\n" +
			"the playlist with ffplay, VLC or Safari. Data lives in a temporary\n" +
			"directory unless --data is given.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			defaults := origin.DefaultConfig()
			defaults.Data = ""
			defaults.RTMP.Listen = "" // one address only, unless --rtmp asks
			var tmp string
			defer func() {
				if tmp != "" {
					os.RemoveAll(tmp)
				}
			}()
			cfg, err := f.load(cmd.Flags(), defaults, func(c *origin.Config) error {
				if c.Data != "" {
					return nil
				}
				dir, err := os.MkdirTemp("", "amphi-demo-")
				if err != nil {
					return err
				}
				tmp, c.Data = dir, dir
				return nil
			})
			if err != nil {
				return err
			}
			ctx, stop := withSignals(cmd.Context())
			defer stop()
			if err := startPprof(ctx, *f.pprof); err != nil {
				return err
			}
			return runDemo(ctx, cfg, cmd.OutOrStdout())
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().Lookup("data").DefValue = ""
	cmd.Flags().Lookup("rtmp").DefValue = ""
	cmd.Flags().Lookup("data").Usage = "data directory (default: a temporary directory)"
	return cmd
}

// runDemo serves an origin on cfg.Listen with the demo broadcast live.
func runDemo(ctx context.Context, cfg origin.Config, out interface{ Write([]byte) (int, error) }) error {
	srv, err := origin.New(cfg, newLogger(cfg.LogLevel))
	if err != nil {
		return usageError(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	src := &demo.Source{}
	asc, err := src.Config()
	if err != nil {
		ln.Close()
		return err
	}
	sess, err := srv.Publish(demoName, &segmenter.AAC{Config: asc})
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(out, "amphi demo: live at %s\n  player page: %s\n",
		playbackURL(ln.Addr(), "/live/"+demoName+"/index.m3u8"), playbackURL(ln.Addr(), "/live/"+demoName+"/"))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error {
		defer sess.End()
		err := src.Run(gctx, sess)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	return g.Wait()
}

// playbackURL turns a listener address into a URL a person can open: an
// unspecified host becomes 127.0.0.1.
func playbackURL(addr net.Addr, path string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + path
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path
}
