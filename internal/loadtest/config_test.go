package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseMix(t *testing.T) {
	m, err := ParseMix("ll=0.8,hint=0.1,legacy=0.1")
	require.NoError(t, err)
	require.InDeltaSlice(t, []float64{0.8, 0.1, 0.1}, m[:], 1e-9)
	m, err = ParseMix(" hint=3, ll=1 ")
	require.NoError(t, err)
	require.InDeltaSlice(t, []float64{0.25, 0.75, 0}, m[:], 1e-9)
	require.Equal(t, "ll=0.25,hint=0.75", m.String())
	require.Equal(t, "ll=0.8,hint=0.1,legacy=0.1", DefaultMix.String())
	for _, bad := range []string{"", "ll", "ll=x", "ll=-1", "dash=1", "ll=1,ll=2", "ll=0", "ll=NaN"} {
		_, err := ParseMix(bad)
		require.Error(t, err, bad)
	}
}

func TestMixAssignFollowsTheMixInEveryPrefix(t *testing.T) {
	got := DefaultMix.assign(100)
	var n [nBehaviours]int
	for i, b := range got {
		n[b]++
		for k := range nBehaviours {
			// Within one listener of the share at every point of a ramp.
			require.InDelta(t, float64(i+1)*DefaultMix[k], float64(n[k]), 1.0)
		}
	}
	require.Equal(t, [nBehaviours]int{80, 10, 10}, n)
	require.Equal(t, []Behaviour{Hint, Hint}, Mix{Hint: 1}.assign(2))
}

func TestParseSourceIPs(t *testing.T) {
	ips, err := ParseSourceIPs("127.0.0.1-127.0.0.254")
	require.NoError(t, err)
	require.Len(t, ips, 254)
	require.Equal(t, "127.0.0.254", ips[253].String())
	ips, err = ParseSourceIPs("127.0.0.9, 127.0.1.255-127.0.2.1")
	require.NoError(t, err)
	require.Len(t, ips, 4)
	require.Equal(t, "127.0.2.0", ips[2].String())
	for _, bad := range []string{"", "x", "127.0.0.9-127.0.0.1", "::1-::2", "10.0.0.0-10.2.0.0", "127.0.0.1-y"} {
		_, err := ParseSourceIPs(bad)
		require.Error(t, err, bad)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no URL":          {},
		"ftp URL":         {URL: "ftp://x/a.m3u8"},
		"no host":         {URL: "http:///a.m3u8"},
		"ramp too long":   {URL: "http://x/a.m3u8", Duration: time.Second, Ramp: time.Second},
		"negative":        {URL: "http://x/a.m3u8", Listeners: -1},
		"mix not summing": {URL: "http://x/a.m3u8", Mix: Mix{LL: 0.5}},
	} {
		_, err := Run(context.Background(), cfg)
		require.Error(t, err, name)
	}
}

func TestRunFailsEarlyOnABadURL(t *testing.T) {
	f := (&faultServer{}).serve(t)
	_, err := Run(context.Background(), Config{URL: f.url + "/nothing.m3u8", Listeners: 1, Duration: time.Second})
	require.ErrorContains(t, err, "HTTP 404")
}
