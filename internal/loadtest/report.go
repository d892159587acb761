package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a load test; it marshals to the JSON object that
// `amphi loadtest --json` writes. Latencies are in milliseconds, rates per
// second of the test's elapsed time.
type Report struct {
	URL           string  `json:"url"`
	MediaPlaylist string  `json:"media_playlist"`
	Listeners     int     `json:"listeners"`
	DurationS     float64 `json:"duration_s"`
	RampS         float64 `json:"ramp_s"`
	Mix           string  `json:"mix"`
	ElapsedS      float64 `json:"elapsed_s"`
	Interrupted   bool    `json:"interrupted"`

	Stream     StreamReport            `json:"stream"`
	Behaviours map[string]*GroupReport `json:"behaviours"`
	// Total sums the behaviours; its part latency covers ll and hint, its
	// segment latency legacy.
	Total      *GroupReport      `json:"total"`
	Generator  GeneratorReport   `json:"generator"`
	Thresholds *ThresholdsReport `json:"thresholds,omitempty"`
}

// StreamReport is what the playlist announced.
type StreamReport struct {
	PartTargetS     float64 `json:"part_target_s"`
	TargetDurationS float64 `json:"target_duration_s"`
	PartHoldBackS   float64 `json:"part_hold_back_s"`
	HoldBackS       float64 `json:"hold_back_s"`
	CanSkipUntilS   float64 `json:"can_skip_until_s"`
	CanBlockReload  bool    `json:"can_block_reload"`
	// ProgramDateTime is false when the playlist has no
	// EXT-X-PROGRAM-DATE-TIME: delivery latency cannot be measured then.
	ProgramDateTime bool `json:"program_date_time"`
}

// GroupReport holds the figures of one behaviour, or of all of them.
type GroupReport struct {
	Listeners    int64 `json:"listeners"`
	Playing      int64 `json:"playing"`       // got audio
	NeverStarted int64 `json:"never_started"` // never got audio
	Ended        int64 `json:"ended"`         // saw EXT-X-ENDLIST
	Resyncs      int64 `json:"resyncs"`       // fell out of the window and rejoined live

	// PartLatency is when a listener held a part's last byte minus the
	// wall-clock time its audio ends (PROGRAM-DATE-TIME of its segment plus
	// the part's offset and duration). Parts fetched to catch up at join are
	// left out.
	PartLatency *Stats `json:"part_latency,omitempty"`
	// SegmentLatency is the same for whole segments (legacy listeners).
	SegmentLatency *Stats `json:"segment_latency,omitempty"`
	// PartLatencyAfterRamp and SegmentLatencyAfterRamp count only media
	// held after the last listener joined: the steady state, without the
	// joins' connection set-up competing for the server.
	PartLatencyAfterRamp    *Stats `json:"part_latency_after_ramp,omitempty"`
	SegmentLatencyAfterRamp *Stats `json:"segment_latency_after_ramp,omitempty"`
	// TimeToFirstAudio runs from a listener's first request to holding its
	// first media (init section included).
	TimeToFirstAudio Stats `json:"time_to_first_audio"`
	// PlaylistWait is how long blocking playlist requests were held.
	PlaylistWait Stats `json:"blocking_playlist_wait"`

	Requests       map[string]int64   `json:"requests"`
	RequestsPerSec map[string]float64 `json:"requests_per_s"`
	Bytes          int64              `json:"bytes"`
	BytesPerSec    float64            `json:"bytes_per_s"`

	// Stalls counts each time a modelled player buffer ran dry or played a
	// hole; StalledS is the time spent so (listeners that never got audio
	// count their whole time). StallRatio is StalledS over ListenedS.
	Stalls     int64   `json:"stalls"`
	StalledS   float64 `json:"stalled_s"`
	ListenedS  float64 `json:"listened_s"`
	StallRatio float64 `json:"stall_ratio"`

	Errors      map[string]int64 `json:"errors"` // "http_404", "timeout", ...
	ErrorsTotal int64            `json:"errors_total"`
}

// GeneratorReport is what the load generator itself cost: this process's
// CPU time (getrusage), which includes any server running in-process.
type GeneratorReport struct {
	CPUSeconds     float64 `json:"cpu_s"`
	UserSeconds    float64 `json:"cpu_user_s"`
	SystemSeconds  float64 `json:"cpu_system_s"`
	Cores          float64 `json:"cores"` // CPU seconds per elapsed second
	MicrosPerReq   float64 `json:"cpu_us_per_request"`
	MaxRSSMiB      float64 `json:"max_rss_mib"`
	SourceAddrs    int     `json:"source_addresses"` // local addresses spread over
	RequestTimeout float64 `json:"request_timeout_s"`
	// EventLoops is how many event loops ran the listeners; 0: each had
	// a goroutine (TLS, not Linux, or Config.Goroutines).
	EventLoops int `json:"event_loops"`
}

// ThresholdsReport is the verdict on --max-stall-ratio and --max-errors.
type ThresholdsReport struct {
	MaxStallRatio *float64 `json:"max_stall_ratio,omitempty"`
	MaxErrors     *int64   `json:"max_errors,omitempty"`
	Passed        bool     `json:"passed"`
	Violations    []string `json:"violations"`
}

// Check judges the report against the thresholds (negative: not checked),
// records the verdict in r.Thresholds and returns the violations.
func (r *Report) Check(maxStallRatio float64, maxErrors int64) []string {
	t := &ThresholdsReport{Violations: []string{}}
	if maxStallRatio >= 0 {
		t.MaxStallRatio = &maxStallRatio
		if r.Total.StallRatio > maxStallRatio {
			t.Violations = append(t.Violations, fmt.Sprintf("stall ratio %.4f > %g", r.Total.StallRatio, maxStallRatio))
		}
	}
	if maxErrors >= 0 {
		t.MaxErrors = &maxErrors
		if r.Total.ErrorsTotal > maxErrors {
			t.Violations = append(t.Violations, fmt.Sprintf("%d errors > %d", r.Total.ErrorsTotal, maxErrors))
		}
	}
	t.Passed = len(t.Violations) == 0
	r.Thresholds = t
	return t.Violations
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1e5) / 1e5 }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (r *runner) report(elapsed, user, sys time.Duration, maxRSSKiB int64) *Report {
	rep := &Report{
		URL:           r.cfg.URL,
		MediaPlaylist: r.mediaURL,
		Listeners:     r.cfg.Listeners,
		DurationS:     seconds(r.cfg.Duration),
		RampS:         seconds(r.cfg.Ramp),
		Mix:           r.cfg.Mix.String(),
		ElapsedS:      round(elapsed.Seconds(), 3),
		Stream: StreamReport{
			PartTargetS:     seconds(r.stream.partTarget),
			TargetDurationS: seconds(r.stream.targetDuration),
			PartHoldBackS:   seconds(r.stream.partHoldBack),
			HoldBackS:       seconds(r.stream.holdBack),
			CanSkipUntilS:   seconds(r.stream.canSkipUntil),
			CanBlockReload:  r.stream.canBlockReload,
			ProgramDateTime: r.stream.timed,
		},
		Behaviours: map[string]*GroupReport{},
	}
	secs := elapsed.Seconds()
	total := &GroupReport{}
	var totalReqs [nKinds]int64
	var totalStatus [600]int64
	var totalErrs [nErrKinds]int64
	parts, segs, ttfa, wait := &histSnapshot{}, &histSnapshot{}, &histSnapshot{}, &histSnapshot{}
	steadyParts, steadySegs := &histSnapshot{}, &histSnapshot{}
	for b, g := range r.groups {
		gr, reqs, status, errs := g.report(Behaviour(b), secs)
		if gr.Listeners > 0 || r.cfg.Mix[b] > 0 {
			rep.Behaviours[Behaviour(b).String()] = gr
		}
		total.Listeners += gr.Listeners
		total.Playing += gr.Playing
		total.NeverStarted += gr.NeverStarted
		total.Ended += gr.Ended
		total.Resyncs += gr.Resyncs
		total.Bytes += gr.Bytes
		total.Stalls += gr.Stalls
		total.StalledS += gr.StalledS
		total.ListenedS += gr.ListenedS
		for i := range reqs {
			totalReqs[i] += reqs[i]
		}
		for i := range status {
			totalStatus[i] += status[i]
		}
		for i := range errs {
			totalErrs[i] += errs[i]
		}
		if Behaviour(b) == Legacy {
			segs.merge(g.latency.snapshot())
			steadySegs.merge(g.steady.snapshot())
		} else {
			parts.merge(g.latency.snapshot())
			steadyParts.merge(g.steady.snapshot())
		}
		ttfa.merge(g.ttfa.snapshot())
		wait.merge(g.wait.snapshot())
	}
	total.PartLatency, total.SegmentLatency = parts.statsOrNil(), segs.statsOrNil()
	total.PartLatencyAfterRamp = steadyParts.statsOrNil()
	total.SegmentLatencyAfterRamp = steadySegs.statsOrNil()
	total.TimeToFirstAudio, total.PlaylistWait = ttfa.stats(), wait.stats()
	fillCounts(total, totalReqs, &totalStatus, totalErrs, secs)
	total.StalledS, total.ListenedS = round(total.StalledS, 3), round(total.ListenedS, 3)
	if total.ListenedS > 0 {
		total.StallRatio = round(total.StalledS/total.ListenedS, 6)
	}
	rep.Total = total

	cpu := user + sys
	rep.Generator = GeneratorReport{
		CPUSeconds:     round(cpu.Seconds(), 3),
		UserSeconds:    round(user.Seconds(), 3),
		SystemSeconds:  round(sys.Seconds(), 3),
		MaxRSSMiB:      round(float64(maxRSSKiB)/1024, 1),
		SourceAddrs:    len(r.sources),
		RequestTimeout: seconds(r.timeout),
		EventLoops:     r.loops,
	}
	if secs > 0 {
		rep.Generator.Cores = round(cpu.Seconds()/secs, 3)
	}
	if n := total.Requests["total"]; n > 0 {
		rep.Generator.MicrosPerReq = round(float64(cpu.Microseconds())/float64(n), 2)
	}
	return rep
}

func (g *group) report(b Behaviour, secs float64) (*GroupReport, [nKinds]int64, *[600]int64, [nErrKinds]int64) {
	gr := &GroupReport{
		Listeners: g.listeners.Load(),
		Playing:   g.playing.Load(),
		Ended:     g.ended.Load(),
		Resyncs:   g.resyncs.Load(),
		Bytes:     g.bytes.Load(),
		Stalls:    g.stalls.Load(),
		StalledS:  round(time.Duration(g.stalledNs.Load()).Seconds(), 3),
		ListenedS: round(time.Duration(g.listenedNs.Load()).Seconds(), 3),
	}
	gr.NeverStarted = gr.Listeners - gr.Playing
	if gr.ListenedS > 0 {
		gr.StallRatio = round(gr.StalledS/gr.ListenedS, 6)
	}
	if b == Legacy {
		gr.SegmentLatency = g.latency.snapshot().statsOrNil()
		gr.SegmentLatencyAfterRamp = g.steady.snapshot().statsOrNil()
	} else {
		gr.PartLatency = g.latency.snapshot().statsOrNil()
		gr.PartLatencyAfterRamp = g.steady.snapshot().statsOrNil()
	}
	gr.TimeToFirstAudio = g.ttfa.snapshot().stats()
	gr.PlaylistWait = g.wait.snapshot().stats()
	var reqs [nKinds]int64
	var status [600]int64
	var errs [nErrKinds]int64
	for i := range reqs {
		reqs[i] = g.reqs[i].Load()
	}
	for i := range status {
		status[i] = g.status[i].Load()
	}
	for i := range errs {
		errs[i] = g.errs[i].Load()
	}
	fillCounts(gr, reqs, &status, errs, secs)
	return gr, reqs, &status, errs
}

func fillCounts(gr *GroupReport, reqs [nKinds]int64, status *[600]int64, errs [nErrKinds]int64, secs float64) {
	rate := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return round(float64(n)/secs, 1)
	}
	gr.Requests = map[string]int64{}
	gr.RequestsPerSec = map[string]float64{}
	var all int64
	for i, n := range reqs {
		all += n
		if n > 0 {
			gr.Requests[kindNames[i]] = n
			gr.RequestsPerSec[kindNames[i]] = rate(n)
		}
	}
	gr.Requests["total"] = all
	gr.RequestsPerSec["total"] = rate(all)
	gr.BytesPerSec = rate(gr.Bytes)
	gr.Errors = map[string]int64{}
	for code, n := range status {
		if n > 0 {
			gr.Errors[fmt.Sprintf("http_%d", code)] = n
			gr.ErrorsTotal += n
		}
	}
	for i, n := range errs {
		if n > 0 {
			gr.Errors[errKindNames[i]] = n
			gr.ErrorsTotal += n
		}
	}
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the human summary: a table with a column per behaviour
// and one for all listeners.
func (r *Report) WriteText(w io.Writer) error {
	var names []string
	for _, n := range behaviourNames {
		if _, ok := r.Behaviours[n]; ok {
			names = append(names, n)
		}
	}
	cols := make([]*GroupReport, 0, len(names)+1)
	for _, n := range names {
		cols = append(cols, r.Behaviours[n])
	}
	cols = append(cols, r.Total)

	var b strings.Builder
	fmt.Fprintf(&b, "amphi loadtest %s\n", r.URL)
	if r.MediaPlaylist != r.URL {
		fmt.Fprintf(&b, "  media playlist %s\n", r.MediaPlaylist)
	}
	s := r.Stream
	fmt.Fprintf(&b, "  stream: part target %gs, target duration %gs, part hold-back %gs, hold-back %gs, blocking reload %s, delta updates %s\n",
		s.PartTargetS, s.TargetDurationS, s.PartHoldBackS, s.HoldBackS, yesNo(s.CanBlockReload), yesNo(s.CanSkipUntilS > 0))
	fmt.Fprintf(&b, "  %d listeners (%s), duration %gs, ramp %gs, elapsed %.1fs", r.Listeners, r.Mix, r.DurationS, r.RampS, r.ElapsedS)
	if r.Interrupted {
		b.WriteString(" (interrupted)")
	}
	b.WriteString("\n")
	if !s.ProgramDateTime {
		b.WriteString("  no EXT-X-PROGRAM-DATE-TIME in the playlist: delivery latency not measured\n")
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, f func(g *GroupReport) string) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, g := range cols {
			fmt.Fprintf(tw, "%s\t", f(g))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "\t")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", n)
	}
	fmt.Fprintln(tw, "all\t")
	row("listeners (playing)", func(g *GroupReport) string { return fmt.Sprintf("%d (%d)", g.Listeners, g.Playing) })
	row("part latency p50/p90/p99/max ms", func(g *GroupReport) string { return quartet(g.PartLatency) })
	row("  after the ramp", func(g *GroupReport) string { return quartet(g.PartLatencyAfterRamp) })
	row("segment latency p50/p90/p99/max ms", func(g *GroupReport) string { return quartet(g.SegmentLatency) })
	row("  after the ramp", func(g *GroupReport) string { return quartet(g.SegmentLatencyAfterRamp) })
	row("time to first audio p50/p90/p99/max ms", func(g *GroupReport) string { return quartet(&g.TimeToFirstAudio) })
	row("blocking playlist wait p50/p90/p99/max ms", func(g *GroupReport) string { return quartet(&g.PlaylistWait) })
	row("requests/s", func(g *GroupReport) string { return fmt.Sprintf("%.1f", g.RequestsPerSec["total"]) })
	for _, k := range kindNames {
		row("  "+k, func(g *GroupReport) string {
			if v, ok := g.RequestsPerSec[k]; ok {
				return fmt.Sprintf("%.1f", v)
			}
			return "-"
		})
	}
	row("MB/s", func(g *GroupReport) string { return fmt.Sprintf("%.2f", g.BytesPerSec/1e6) })
	row("stalls (count)", func(g *GroupReport) string { return fmt.Sprint(g.Stalls) })
	row("stalled s (ratio)", func(g *GroupReport) string { return fmt.Sprintf("%.2f (%.4f)", g.StalledS, g.StallRatio) })
	row("errors", func(g *GroupReport) string { return fmt.Sprint(g.ErrorsTotal) })
	errNames := map[string]bool{}
	for _, g := range cols {
		for k := range g.Errors {
			errNames[k] = true
		}
	}
	sorted := make([]string, 0, len(errNames))
	for k := range errNames {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		row("  "+k, func(g *GroupReport) string { return fmt.Sprint(g.Errors[k]) })
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	gen := r.Generator
	model := "a goroutine per listener"
	switch {
	case gen.EventLoops == 1:
		model = "1 event loop"
	case gen.EventLoops > 1:
		model = fmt.Sprintf("%d event loops", gen.EventLoops)
	}
	fmt.Fprintf(&b, "\ngenerator: %.2f CPU-s (%.2f cores; user %.2f, system %.2f), %.1f µs CPU per request, max RSS %.0f MiB, %d source addresses, %s\n",
		gen.CPUSeconds, gen.Cores, gen.UserSeconds, gen.SystemSeconds, gen.MicrosPerReq, gen.MaxRSSMiB, gen.SourceAddrs, model)
	if t := r.Thresholds; t != nil {
		if t.Passed {
			b.WriteString("thresholds: passed\n")
		} else {
			fmt.Fprintf(&b, "thresholds: FAILED: %s\n", strings.Join(t.Violations, "; "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func quartet(s *Stats) string {
	if s == nil || s.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f/%.0f/%.0f", s.P50, s.P90, s.P99, s.Max)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
