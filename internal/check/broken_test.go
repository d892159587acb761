package check

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runFake checks a fakeLL for a few seconds and returns the report.
func runFake(t *testing.T, f *fakeLL, strict Switch) *Report {
	t.Helper()
	base := f.serve(t)
	rep, err := Run(context.Background(), Config{URL: base + "/index.m3u8", Duration: 3 * time.Second, Strict503: strict, Slack: testSlack})
	require.NoError(t, err)
	if testing.Verbose() {
		rep.WriteText(os.Stdout)
	}
	return rep
}

// TestCompliantFake makes sure the fake server is a fair baseline: every
// rule passes except age (no cache), and the 503 path is exercised.
func TestCompliantFake(t *testing.T) {
	t.Parallel()
	rep := runFake(t, &fakeLL{}, On)
	for _, res := range rep.Rules {
		want := Pass
		if res.ID == "age" {
			want = Skip
		}
		require.Equal(t, want, res.Status, "%s: %s", res.ID, res.Evidence)
	}
	res, _ := rep.Result("blocking")
	require.Contains(t, res.Evidence, "unmeetable hold: 503 after 2")
	res, _ = rep.Result("rendition-reports")
	require.Contains(t, res.Evidence, "each of 2 media playlists reports the other 1 rendition")
	res, _ = rep.Result("delta")
	require.NotContains(t, res.Evidence, "SKIPPED-SEGMENTS=0")
}

// TestBrokenServers breaks one rule family at a time: the matching rule
// fails with evidence naming the fault, and no other rule fails. The checks
// run at once (they mostly wait) and are judged one by one.
func TestBrokenServers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		fake     *fakeLL
		strict   Switch
		rule     string
		evidence string
	}{
		{"part longer than PART-TARGET", &fakeLL{partTarget: 0.19}, Off, "part-target", "lasts 0.2 > PART-TARGET 0.19"},
		{"PART-HOLD-BACK 2x", &fakeLL{holdBackFactor: 2}, Off, "part-hold-back", "PART-HOLD-BACK 0.4 < 3 × PART-TARGET 0.2 = 0.6"},
		{"SERVER-CONTROL changes", &fakeLL{flapServerControl: true}, Off, "server-control-stable", "EXT-X-SERVER-CONTROL changed at reload"},
		{"no PDT", &fakeLL{noPDT: true}, Off, "pdt", "no EXT-X-PROGRAM-DATE-TIME on the first segment in"},
		{"no preload hint", &fakeLL{noHint: true}, Off, "preload-hint", "no EXT-X-PRELOAD-HINT:TYPE=PART in"},
		{"no rendition reports", &fakeLL{noReports: true}, Off, "rendition-reports", "a.m3u8 has no EXT-X-RENDITION-REPORT for b.m3u8"},
		{"timed-out hold answered 200", &fakeLL{holdLimit: time.Second, timeoutOK: true}, On, "blocking", "without the part: a timed-out hold must end in 503"},
		{"no-cache on playlists", &fakeLL{playlistCC: "no-cache"}, Off, "cache-control", `playlist: Cache-Control "no-cache" on`},
		{"no CORS", &fakeLL{noCORS: true}, Off, "cors", "no Access-Control-Allow-Origin for Origin"},
		{"no gzip", &fakeLL{noGzip: true}, Off, "gzip", "not gzip-compressed with Accept-Encoding: gzip"},
		{"Range ignored", &fakeLL{ignoreRange: true}, Off, "head-range", "Range bytes=0-99 ignored: 200 with all 1000 bytes"},
	}
	reports := make([]*Report, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		base := tc.fake.serve(t)
		wg.Go(func() {
			reports[i], errs[i] = Run(context.Background(), Config{
				URL: base + "/index.m3u8", Duration: 3 * time.Second, Strict503: tc.strict, Slack: testSlack,
			})
		})
	}
	wg.Wait()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, errs[i])
			rep := reports[i]
			if testing.Verbose() {
				rep.WriteText(os.Stdout)
			}
			for _, res := range rep.Rules {
				if res.ID == tc.rule {
					require.Equal(t, Fail, res.Status, "%s: %s", res.ID, res.Evidence)
					require.Contains(t, res.Evidence, tc.evidence)
					continue
				}
				require.NotEqual(t, Fail, res.Status, "%s: %s", res.ID, res.Evidence)
			}
			require.Equal(t, 1, rep.Failed)
		})
	}
}
