package llhls

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// errAny marks a case that must fail without naming a sentinel error.
var errAny = errors.New("any error")

var directiveCases = []struct {
	name  string
	query string
	want  Directives
	err   error
}{
	{name: "empty", query: ""},
	{name: "unrelated parameter", query: "foo=1"},
	{name: "only separators", query: "&&&"},
	{name: "msn", query: "_HLS_msn=5", want: Directives{HasMSN: true, MSN: 5}},
	{name: "msn zero", query: "_HLS_msn=0", want: Directives{HasMSN: true}},
	{name: "msn leading zeros", query: "_HLS_msn=007", want: Directives{HasMSN: true, MSN: 7}},
	{name: "msn and part", query: "_HLS_msn=5&_HLS_part=2",
		want: Directives{HasMSN: true, MSN: 5, HasPart: true, Part: 2}},
	{name: "part before msn", query: "_HLS_part=2&_HLS_msn=5",
		want: Directives{HasMSN: true, MSN: 5, HasPart: true, Part: 2}},
	{name: "part zero", query: "_HLS_msn=5&_HLS_part=0",
		want: Directives{HasMSN: true, MSN: 5, HasPart: true}},
	{name: "skip YES", query: "_HLS_skip=YES", want: Directives{Skip: true}},
	{name: "skip v2", query: "_HLS_skip=v2", want: Directives{Skip: true}},
	{name: "skip NO", query: "_HLS_skip=NO", err: ErrBadSkip},
	{name: "skip lower case", query: "_HLS_skip=yes", err: ErrBadSkip},
	{name: "skip empty", query: "_HLS_skip=", err: ErrBadSkip},
	{name: "all three reversed", query: "_HLS_skip=v2&_HLS_part=3&_HLS_msn=10",
		want: Directives{HasMSN: true, MSN: 10, HasPart: true, Part: 3, Skip: true}},
	{name: "part without msn", query: "_HLS_part=1", err: ErrPartWithoutMSN},
	{name: "part without msn with skip", query: "_HLS_part=1&_HLS_skip=YES", err: ErrPartWithoutMSN},
	{name: "negative msn", query: "_HLS_msn=-1", err: ErrBadMSN},
	{name: "letters in msn", query: "_HLS_msn=abc", err: ErrBadMSN},
	{name: "hex msn", query: "_HLS_msn=0x10", err: ErrBadMSN},
	{name: "fractional msn", query: "_HLS_msn=1.5", err: ErrBadMSN},
	{name: "empty msn", query: "_HLS_msn=", err: ErrBadMSN},
	{name: "msn without value", query: "_HLS_msn", err: ErrBadMSN},
	{name: "plus sign decodes to space", query: "_HLS_msn=+5", err: ErrBadMSN},
	{name: "huge msn", query: "_HLS_msn=99999999999999999999", err: ErrBadMSN},
	{name: "msn at the bound", query: "_HLS_msn=1099511627776",
		want: Directives{HasMSN: true, MSN: maxDirective}},
	{name: "msn past the bound", query: "_HLS_msn=1099511627777", err: ErrBadMSN},
	{name: "bad part", query: "_HLS_msn=1&_HLS_part=x", err: ErrBadPart},
	{name: "negative part", query: "_HLS_msn=1&_HLS_part=-1", err: ErrBadPart},
	{name: "huge part", query: "_HLS_msn=1&_HLS_part=99999999999999999999", err: ErrBadPart},
	{name: "repeated msn", query: "_HLS_msn=5&_HLS_msn=6", err: ErrRepeated},
	{name: "repeated msn same value", query: "_HLS_msn=5&_HLS_msn=5", err: ErrRepeated},
	{name: "repeated part", query: "_HLS_msn=5&_HLS_part=1&_HLS_part=1", err: ErrRepeated},
	{name: "repeated skip", query: "_HLS_skip=YES&_HLS_skip=YES", err: ErrRepeated},
	{name: "escaped digit", query: "_HLS_msn=%35", want: Directives{HasMSN: true, MSN: 5}},
	{name: "escaped digits", query: "_HLS_msn=%31%32&_HLS_part=%33",
		want: Directives{HasMSN: true, MSN: 12, HasPart: true, Part: 3}},
	{name: "escaped skip value", query: "_HLS_skip=%59ES", want: Directives{Skip: true}},
	{name: "escaped minus", query: "_HLS_msn=%2D1", err: ErrBadMSN},
	{name: "broken escape", query: "_HLS_msn=%zz", err: errAny},
	{name: "semicolon is not a separator", query: "_HLS_msn=1;_HLS_part=2", err: ErrBadMSN},
	{name: "names are case sensitive", query: "_hls_msn=5&_HLS_MSN=6"},
	{name: "unknown _HLS_ parameter", query: "_HLS_foo=1&_HLS_msn=2", want: Directives{HasMSN: true, MSN: 2}},
	{name: "extra parameters ignored", query: "token=abc&_HLS_msn=5&x=_HLS_msn%3D9&_HLS_part=0&utm=1",
		want: Directives{HasMSN: true, MSN: 5, HasPart: true}},
	{name: "extra parameter with bad escape ignored", query: "x=%zz&_HLS_msn=4", want: Directives{HasMSN: true, MSN: 4}},
	{name: "empty pairs", query: "&_HLS_msn=5&&_HLS_part=1&", want: Directives{HasMSN: true, MSN: 5, HasPart: true, Part: 1}},
}

func TestParseDirectives(t *testing.T) {
	for _, tc := range directiveCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDirectives(tc.query)
			switch tc.err {
			case nil:
				require.NoError(t, err)
				require.Equal(t, tc.want, d)
			case errAny:
				require.Error(t, err)
				require.Equal(t, Directives{}, d)
			default:
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, Directives{}, d)
			}
		})
	}
}

func TestDirectivesQuery(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Directives
		want string
	}{
		{"none", Directives{}, ""},
		{"msn", Directives{HasMSN: true, MSN: 5}, "_HLS_msn=5"},
		{"msn zero", Directives{HasMSN: true}, "_HLS_msn=0"},
		{"msn and part", Directives{HasMSN: true, MSN: 5, HasPart: true, Part: 2}, "_HLS_msn=5&_HLS_part=2"},
		{"skip", Directives{Skip: true}, "_HLS_skip=YES"},
		{"msn and skip", Directives{HasMSN: true, MSN: 5, Skip: true}, "_HLS_msn=5&_HLS_skip=YES"},
		{"all", Directives{HasMSN: true, MSN: 5, HasPart: true, Part: 2, Skip: true},
			"_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"},
		// ParseDirectives never returns this, but Query must not emit an
		// invalid query for it either.
		{"part without msn", Directives{HasPart: true, Part: 2}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.d.Query())
		})
	}
}

// Query is the cache key: every spelling of the same request must map to one
// key, in the order clients use, without other parameters.
func TestDirectivesQueryNormalises(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", ""},
		{"foo=1&bar=2", ""},
		{"_HLS_msn=5&_HLS_part=2&_HLS_skip=YES", "_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"},
		{"_HLS_skip=YES&_HLS_part=2&_HLS_msn=5", "_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"},
		{"_HLS_part=2&_HLS_skip=v2&_HLS_msn=5", "_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"},
		{"token=abc&_HLS_part=2&cb=123&_HLS_msn=05", "_HLS_msn=5&_HLS_part=2"},
		{"_HLS_msn=%35&x=1", "_HLS_msn=5"},
		{"_HLS_skip=v2&session=9", "_HLS_skip=YES"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			d, err := ParseDirectives(tc.query)
			require.NoError(t, err)
			require.Equal(t, tc.want, d.Query())
		})
	}
}

func TestParseDirectivesNoAllocWithoutDirectives(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = ParseDirectives("token=abc&cb=12345&foo=bar")
	})
	require.Zero(t, allocs)
}

func FuzzParseDirectives(f *testing.F) {
	for _, tc := range directiveCases {
		f.Add(tc.query)
	}
	f.Fuzz(func(t *testing.T, q string) {
		d, err := ParseDirectives(q)
		if err != nil {
			require.Equal(t, Directives{}, d)
			return
		}
		if d.HasPart {
			require.True(t, d.HasMSN, "part without msn accepted")
		}
		if !d.HasMSN {
			require.Zero(t, d.MSN)
		}
		if !d.HasPart {
			require.Zero(t, d.Part)
		}
		require.LessOrEqual(t, d.MSN, uint64(maxDirective))
		require.LessOrEqual(t, d.Part, uint64(maxDirective))

		nq := d.Query()
		d2, err := ParseDirectives(nq)
		require.NoError(t, err, "normalised query %q", nq)
		require.Equal(t, d, d2)
		require.Equal(t, nq, d2.Query())
	})
}

func BenchmarkParseDirectives(b *testing.B) {
	for _, q := range []string{"", "_HLS_msn=1234&_HLS_part=5", "_HLS_msn=1234&_HLS_part=5&_HLS_skip=YES&token=x"} {
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseDirectives(q)
			}
		})
	}
}
