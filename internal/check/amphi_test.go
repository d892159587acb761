package check

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testSlack absorbs the scheduling delays of a busy test machine in the
// timing bounds; the rules' verdicts that tests assert do not depend on it.
const testSlack = time.Second

// TestAgainstAmphi checks a real origin (low preset: PART-TARGET 0.21333,
// TARGETDURATION 1) directly and through a real edge: every rule passes,
// except age (no cache in front of the origin) and rendition-reports (one
// rendition), which skip at the origin; at the edge age passes too.
func TestAgainstAmphi(t *testing.T) {
	t.Parallel()
	origin := startOrigin(t)
	edgeURL := startEdge(t, origin)
	// Let the playlist grow past CAN-SKIP-UNTIL (6 s) so that the delta
	// update skips something.
	time.Sleep(6500 * time.Millisecond)

	for _, tc := range []struct {
		name        string
		base        string
		skips       []string
		expectCache bool
	}{
		{"origin", origin, []string{"age", "rendition-reports"}, false},
		{"edge", edgeURL, []string{"rendition-reports"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Run(context.Background(), Config{
				URL:         tc.base + "/live/live/index.m3u8",
				Duration:    5 * time.Second,
				Strict503:   On,
				ExpectCache: tc.expectCache,
				Slack:       testSlack,
			})
			require.NoError(t, err)
			if testing.Verbose() {
				rep.WriteText(os.Stdout)
			}
			for _, res := range rep.Rules {
				want := Pass
				for _, s := range tc.skips {
					if s == res.ID {
						want = Skip
					}
				}
				require.Equal(t, want, res.Status, "%s: %s", res.ID, res.Evidence)
			}
		})
	}
}
