package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/amphi-live/amphi/internal/loadtest"
)

// loadtestOptions are the flags of `amphi loadtest`.
type loadtestOptions struct {
	listeners     int
	duration      time.Duration
	ramp          time.Duration
	mix           string
	jsonFile      string
	maxStallRatio float64
	maxErrors     int64
	sourceIPs     string
	timeout       time.Duration
	cpuProfile    string
	procs         int
	goroutines    bool
}

func newLoadtestCmd() *cobra.Command { return loadtestCommand(&loadtestOptions{}) }

// loadtestCommand builds the command with its flags bound to o.
func loadtestCommand(o *loadtestOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadtest URL",
		Short: "Simulate many LL-HLS listeners against a playlist URL and measure them",
		Long: "Simulate --listeners players following URL (a multivariant or media\n" +
			"playlist on an amphi origin or edge, nginx, or any LL-HLS server) for\n" +
			"--duration, and report part delivery latency, time to first audio,\n" +
			"blocking-playlist waits, requests and bytes per second, stalls of a\n" +
			"modelled player buffer, and errors by kind.\n\n" +
			"Behaviours (--mix): ll follows hls.js in low-latency mode (blocking\n" +
			"playlist requests for the next part, delta updates); hint follows\n" +
			"AVPlayer and Shaka (the preload-hinted part requested in parallel with\n" +
			"the playlist); legacy reloads the playlist every target duration and\n" +
			"fetches whole segments. --ramp 0 makes every listener join at once.\n\n" +
			"Each listener keeps its own keep-alive connection (hint: two); against\n" +
			"a loopback target they come from 127.0.0.1-127.0.0.254 so tens of\n" +
			"thousands of connections do not run out of ports. On Linux, over plain\n" +
			"HTTP, the listeners run as coroutines of one epoll loop per core the\n" +
			"generator may use (--procs), so that it takes as little CPU as it can\n" +
			"from the server it measures (--goroutines: a goroutine each, as\n" +
			"before). The exit status is 1\n" +
			"when --max-stall-ratio or --max-errors is exceeded.",
		Example: "  amphi loadtest http://127.0.0.1:8080/live/demo/index.m3u8 --listeners 2000 --duration 30s\n" +
			"  amphi loadtest http://edge:8081/live/demo/audio.m3u8 --listeners 5000 --ramp 0 --duration 20s \\\n" +
			"      --mix ll=0.5,hint=0.5 --json result.json --max-stall-ratio 0.01 --max-errors 0",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(args[0])
			if err != nil {
				return usageError(err)
			}
			ctx, stop := withSignals(cmd.Context())
			defer stop()
			return runLoadtest(ctx, cfg, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
		SilenceUsage: true,
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	f := cmd.Flags()
	f.IntVarP(&o.listeners, "listeners", "n", 100, "number of simulated listeners")
	f.DurationVarP(&o.duration, "duration", "d", 30*time.Second, "how long the test runs, ramp included")
	f.DurationVar(&o.ramp, "ramp", 0, "spread the joins over this time (0: all join at once)")
	f.StringVar(&o.mix, "mix", loadtest.DefaultMix.String(), "share of each behaviour: ll, hint, legacy")
	f.StringVar(&o.jsonFile, "json", "", "also write the results as one JSON object to this file")
	f.Float64Var(&o.maxStallRatio, "max-stall-ratio", -1, "fail (exit 1) when stalled time / listened time exceeds this (negative: off)")
	f.Int64Var(&o.maxErrors, "max-errors", -1, "fail (exit 1) when more requests than this fail (negative: off)")
	f.StringVar(&o.sourceIPs, "source-ips", "", "local source addresses, e.g. 127.0.0.1-127.0.0.254 (default: that range for loopback targets)")
	f.DurationVar(&o.timeout, "timeout", 0, "limit for one request (0: max(5s, 3 x target duration + 1s))")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the generator to this file (for go tool pprof)")
	f.IntVar(&o.procs, "procs", 0, "cores the generator's Go code may use at once (GOMAXPROCS; 0: all); 1 costs the least per request, but a generator at 1.0 cores delays what it measures")
	f.BoolVar(&o.goroutines, "goroutines", false, "run each listener on its own goroutine instead of on event loops (Linux, plain HTTP), as the generator did before; for comparisons")
	return cmd
}

// config checks the flags and builds the load test's configuration.
func (o *loadtestOptions) config(url string) (loadtest.Config, error) {
	cfg := loadtest.Config{
		URL:       url,
		Listeners: o.listeners,
		Duration:  o.duration,
		Ramp:      o.ramp,
		Timeout:   o.timeout,

		Goroutines: o.goroutines,
	}
	switch {
	case !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://"):
		return cfg, fmt.Errorf("URL %q: want an http:// or https:// playlist URL", url)
	case o.listeners < 1:
		return cfg, fmt.Errorf("--listeners must be at least 1, got %d", o.listeners)
	case o.duration <= 0:
		return cfg, fmt.Errorf("--duration must be positive, got %s", o.duration)
	case o.ramp < 0 || o.ramp >= o.duration:
		return cfg, fmt.Errorf("--ramp must be at least 0 and shorter than --duration, got %s", o.ramp)
	case o.timeout < 0:
		return cfg, fmt.Errorf("--timeout must not be negative, got %s", o.timeout)
	case o.procs < 0:
		return cfg, fmt.Errorf("--procs must not be negative, got %d", o.procs)
	}
	var err error
	if cfg.Mix, err = loadtest.ParseMix(o.mix); err != nil {
		return cfg, fmt.Errorf("--mix: %w", err)
	}
	if o.sourceIPs != "" {
		if cfg.SourceIPs, err = loadtest.ParseSourceIPs(o.sourceIPs); err != nil {
			return cfg, fmt.Errorf("--source-ips: %w", err)
		}
	}
	return cfg, nil
}

// runLoadtest runs the test with a progress display, prints the summary to
// stdout, writes --json, and turns exceeded thresholds into exit status 1.
func runLoadtest(ctx context.Context, cfg loadtest.Config, o *loadtestOptions, stdout, stderr io.Writer) error {
	if o.procs > 0 {
		prev := runtime.GOMAXPROCS(o.procs)
		defer runtime.GOMAXPROCS(prev)
	}
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	prog := newProgressDisplay(stdout, stderr, cfg.Duration)
	cfg.Progress = prog.update
	rep, err := loadtest.Run(ctx, cfg)
	prog.finish()
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	violations := rep.Check(o.maxStallRatio, o.maxErrors)
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if o.jsonFile != "" {
		if err := writeReportFile(o.jsonFile, rep); err != nil {
			return err
		}
	}
	if len(violations) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("thresholds exceeded: %s", strings.Join(violations, "; "))}
	}
	return nil
}

// startCPUProfile starts a CPU profile into name ("": none); the function
// it returns stops it and closes the file.
func startCPUProfile(name string) (stop func() error, err error) {
	if name == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}

func writeReportFile(name string, rep *loadtest.Report) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("--json: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// progressDisplay shows the running test: a progress bar when stdout is a
// terminal, otherwise one plain line per update on stderr (so that stdout
// carries only the summary).
type progressDisplay struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	plain io.Writer
}

func newProgressDisplay(stdout, stderr io.Writer, d time.Duration) *progressDisplay {
	p := &progressDisplay{plain: stderr}
	if isTerminal(stdout) {
		p.bar = progressbar.NewOptions64(int64(d/time.Second),
			progressbar.OptionSetWriter(stdout),
			progressbar.OptionSetWidth(20),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progressDisplay) update(pr loadtest.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Describe(pr.String())
		_ = p.bar.Set64(int64(pr.Elapsed / time.Second))
		return
	}
	fmt.Fprintln(p.plain, "loadtest:", pr.String())
}

func (p *progressDisplay) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
