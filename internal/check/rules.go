package check

import (
	"fmt"
	"path"
	"strings"
)

// evaluate judges every rule from what the run observed, in Rules order.
func (r *run) evaluate() []Result {
	judges := map[string]func() Result{
		"part-target":           r.rulePartTarget,
		"part-hold-back":        r.rulePartHoldBack,
		"server-control-stable": r.ruleServerControlStable,
		"target-duration":       r.ruleTargetDuration,
		"pdt":                   r.rulePDT,
		"preload-hint":          r.rulePreloadHint,
		"rendition-reports":     r.ruleRenditionReports,
		"blocking":              r.ruleBlocking,
		"delta":                 r.ruleDelta,
		"cache-control":         r.ruleCacheControl,
		"age":                   r.ruleAge,
		"gzip":                  r.ruleGzip,
		"cors":                  r.ruleCORS,
		"head-range":            r.ruleHeadRange,
		"codecs":                r.ruleCodecs,
	}
	out := make([]Result, 0, len(Rules))
	for _, id := range Rules {
		res := judges[id]()
		res.ID = id
		out = append(out, res)
	}
	return out
}

// verdict collects the findings of one rule: any failure makes it FAIL
// with the failures as evidence, else it passes with the notes.
type verdict struct {
	fails []string
	notes []string
}

// maxFails is how many failures one evidence line names.
const maxFails = 3

func (v *verdict) fail(format string, a ...any) { v.fails = append(v.fails, fmt.Sprintf(format, a...)) }
func (v *verdict) note(format string, a ...any) { v.notes = append(v.notes, fmt.Sprintf(format, a...)) }

func (v *verdict) result() Result {
	if len(v.fails) > 0 {
		ev := strings.Join(v.fails[:min(len(v.fails), maxFails)], "; ")
		if n := len(v.fails) - maxFails; n > 0 {
			ev += fmt.Sprintf("; and %d more", n)
		}
		return Result{Status: Fail, Evidence: ev}
	}
	return Result{Status: Pass, Evidence: strings.Join(v.notes, "; ")}
}

// parsed returns the reloads of the followed playlist that parsed.
func (r *run) parsed() []*mediaPlaylist {
	var out []*mediaPlaylist
	for _, rl := range r.reloads {
		if rl.pl != nil {
			out = append(out, rl.pl)
		}
	}
	return out
}

// name is the last path element of a URL or URI, for evidence.
func name(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return path.Base(u)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
