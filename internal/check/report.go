package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status is the outcome of one rule.
type Status string

// The outcomes of a rule.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	// Skip means the rule does not apply or could not be observed.
	Skip Status = "SKIP"
)

// Result is one rule's outcome with the evidence behind it.
type Result struct {
	// ID is the rule's stable identifier, e.g. "part-target".
	ID       string `json:"id"`
	Status   Status `json:"status"`
	Evidence string `json:"evidence"`
}

// Report is the outcome of a check.
type Report struct {
	URL     string   `json:"url"`
	Rules   []Result `json:"rules"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Skipped int      `json:"skipped"`
}

// Rules lists the rule IDs in the order they are reported.
var Rules = []string{
	"part-target",
	"part-hold-back",
	"server-control-stable",
	"target-duration",
	"pdt",
	"preload-hint",
	"rendition-reports",
	"blocking",
	"delta",
	"cache-control",
	"age",
	"gzip",
	"cors",
	"head-range",
	"codecs",
}

func newReport(url string, results []Result) *Report {
	r := &Report{URL: url, Rules: results}
	for _, res := range results {
		switch res.Status {
		case Pass:
			r.Passed++
		case Fail:
			r.Failed++
		default:
			r.Skipped++
		}
	}
	return r
}

// Result returns the result of rule id, and whether it was reported.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Rules {
		if res.ID == id {
			return res, true
		}
	}
	return Result{}, false
}

// WriteText writes one line per rule, then a summary line.
func (r *Report) WriteText(w io.Writer) error {
	width := 0
	for _, res := range r.Rules {
		width = max(width, len(res.ID))
	}
	var b strings.Builder
	for _, res := range r.Rules {
		fmt.Fprintf(&b, "%s %-*s  %s\n", res.Status, width, res.ID, res.Evidence)
	}
	fmt.Fprintf(&b, "%d rules: %d passed, %d failed, %d skipped\n", len(r.Rules), r.Passed, r.Failed, r.Skipped)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func pass(id, format string, a ...any) Result {
	return Result{ID: id, Status: Pass, Evidence: fmt.Sprintf(format, a...)}
}

func fail(id, format string, a ...any) Result {
	return Result{ID: id, Status: Fail, Evidence: fmt.Sprintf(format, a...)}
}

func skip(id, format string, a ...any) Result {
	return Result{ID: id, Status: Skip, Evidence: fmt.Sprintf(format, a...)}
}
