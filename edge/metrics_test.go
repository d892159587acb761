package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestInstrumentAllocatesNothing: counting a request by kind and status
// makes no garbage, whatever the status.
func TestInstrumentAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	m := newMetrics(&Edge{})
	status := http.StatusOK
	h := m.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	// A recorder records its first status only, and then takes WriteHeader
	// without allocating; the counts below come from the wrapper.
	w := httptest.NewRecorder()
	for _, target := range []string{"/live/demo/p12.3.m4s", "/live/demo/a.m3u8?_HLS_msn=12&_HLS_part=3"} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for _, status = range []int{http.StatusOK, http.StatusNotFound} {
			h.ServeHTTP(w, r) // the first of a kind and status makes its counter
			if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
				t.Errorf("%s answered %d: %.1f allocations per request", target, status, n)
			}
		}
	}
	var d dto.Metric
	if err := m.requests.WithLabelValues("blocking_playlist", "404").Write(&d); err != nil {
		t.Fatal(err)
	}
	if got := d.GetCounter().GetValue(); got != 102 {
		t.Errorf("blocking_playlist 404 counted %v times, want 102", got)
	}
}
