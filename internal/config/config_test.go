package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// ms is a TextUnmarshaler like origin.Duration: "250ms", "" is zero.
type ms time.Duration

func (d *ms) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration", b)
	}
	*d = ms(v)
	return nil
}

type inner struct {
	Preset string `yaml:"preset"`
	Part   ms     `yaml:"part_duration"`
	Window int    `yaml:"window"`
	Deep   struct {
		Ratio float64 `yaml:"ratio"`
	} `yaml:"deep"`
}

type testConf struct {
	Listen  string        `yaml:"listen"`
	Debug   bool          `yaml:"debug"`
	Max     int64         `yaml:"max_streams"`
	Hosts   []string      `yaml:"hosts"`
	Timeout time.Duration `yaml:"timeout"`
	Seg     inner         `yaml:"segmenter"`
	Skip    string        `yaml:"-"`
	NoTag   string
	private string //nolint:unused
}

func defaults() testConf {
	c := testConf{Listen: ":8080", Max: 100, Hosts: []string{"a"}, Timeout: time.Second}
	c.Seg.Preset = "balanced"
	c.Seg.Part = ms(500 * time.Millisecond)
	c.Seg.Deep.Ratio = 1.5
	return c
}

func writeFile(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conf.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// flags returns a flag set like a cobra command's, parsed from args.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("preset", "balanced", "")
	fs.String("listen", ":8080", "")
	fs.Duration("part", 0, "")
	fs.String("max", "", "")
	fs.StringSlice("host", nil, "")
	fs.Bool("debug", false, "")
	require.NoError(t, fs.Parse(args))
	return fs
}

var flagKeys = map[string]string{
	"preset": "segmenter.preset",
	"listen": "listen",
	"part":   "segmenter.part_duration",
	"max":    "max_streams",
	"host":   "hosts",
	"debug":  "debug",
}

func TestKeys(t *testing.T) {
	want := []string{
		"debug", "hosts", "listen", "max_streams", "notag",
		"segmenter.deep.ratio", "segmenter.part_duration", "segmenter.preset", "segmenter.window",
		"timeout",
	}
	require.Equal(t, want, Keys(&testConf{}))
	require.Equal(t, want, Keys(testConf{}))
	require.Nil(t, Keys(42))
}

func TestEnvName(t *testing.T) {
	require.Equal(t, "AMPHI_SEGMENTER_PART_DURATION", EnvName("AMPHI_", "segmenter.part_duration"))
	require.Equal(t, "X_A_B", EnvName("X_", "a-b"))
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "segmenter:\n  preset: low\nlisten: \":9000\"\n")
	tests := []struct {
		name   string
		src    Source
		preset string
		listen string
	}{
		{"defaults", Source{}, "balanced", ":8080"},
		{"file over default", Source{File: file}, "low", ":9000"},
		{"env over file", Source{File: file, EnvPrefix: "AMPHI_", Environ: []string{"AMPHI_SEGMENTER_PRESET=scale"}}, "scale", ":9000"},
		{"env without file", Source{EnvPrefix: "AMPHI_", Environ: []string{"AMPHI_LISTEN=:1"}}, "balanced", ":1"},
		{"no prefix: env ignored", Source{File: file, Environ: []string{"SEGMENTER_PRESET=scale"}}, "low", ":9000"},
		{"other prefix ignored", Source{File: file, EnvPrefix: "AMPHI_", Environ: []string{"EDGE_SEGMENTER_PRESET=scale"}}, "low", ":9000"},
		{"first env entry wins", Source{EnvPrefix: "AMPHI_", Environ: []string{"AMPHI_SEGMENTER_PRESET=scale", "AMPHI_SEGMENTER_PRESET=low"}}, "scale", ":8080"},
		{"flag over env", Source{
			File: file, EnvPrefix: "AMPHI_", Environ: []string{"AMPHI_SEGMENTER_PRESET=scale"},
			Flags: flags(t, "--preset", "balanced"), FlagKeys: flagKeys,
		}, "balanced", ":9000"},
		{"unchanged flag leaves env", Source{
			File: file, EnvPrefix: "AMPHI_", Environ: []string{"AMPHI_SEGMENTER_PRESET=scale"},
			Flags: flags(t, "--listen", ":2"), FlagKeys: flagKeys,
		}, "scale", ":2"},
		{"flag set to its default still wins", Source{
			File: file, Flags: flags(t, "--listen=:8080"), FlagKeys: flagKeys,
		}, "low", ":8080"},
		{"flags without keys ignored", Source{File: file, Flags: flags(t, "--preset", "scale")}, "low", ":9000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			require.NoError(t, Load(&c, tc.src))
			require.Equal(t, tc.preset, c.Seg.Preset)
			require.Equal(t, tc.listen, c.Listen)
		})
	}
}

func TestAllTypes(t *testing.T) {
	tests := []struct {
		name string
		src  func(t *testing.T) Source
	}{
		{"file", func(t *testing.T) Source {
			return Source{File: writeFile(t, `
listen: ":1"
debug: true
max_streams: 7
hosts: [x, "y"]
timeout: 3s
notag: n
segmenter:
  preset: low
  part_duration: 200ms
  window: 9
  deep:
    ratio: 0.25
`)}
		}},
		{"env", func(t *testing.T) Source {
			return Source{EnvPrefix: "T_", Environ: []string{
				"T_LISTEN=:1", "T_DEBUG=true", "T_MAX_STREAMS= 7 ", "T_HOSTS=x, y,", "T_TIMEOUT=3s", "T_NOTAG=n",
				"T_SEGMENTER_PRESET=low", "T_SEGMENTER_PART_DURATION=200ms", "T_SEGMENTER_WINDOW=9",
				"T_SEGMENTER_DEEP_RATIO=0.25", "UNRELATED=1", "NOEQUALS",
			}}
		}},
		{"flags", func(t *testing.T) Source {
			fs := flags(t, "--listen=:1", "--debug", "--max=7", "--host=x", "--host=y", "--part=200ms", "--preset=low")
			fs.String("timeout", "", "")
			fs.Int("window", 0, "")
			fs.Float64("ratio", 0, "")
			fs.String("notag", "", "")
			require.NoError(t, fs.Parse([]string{"--timeout=3s", "--window=9", "--ratio=0.25", "--notag=n"}))
			keys := map[string]string{"timeout": "timeout", "window": "segmenter.window", "ratio": "segmenter.deep.ratio", "notag": "notag"}
			for k, v := range flagKeys {
				keys[k] = v
			}
			return Source{Flags: fs, FlagKeys: keys}
		}},
	}
	want := defaults()
	want.Listen, want.Debug, want.Max, want.Hosts, want.Timeout, want.NoTag = ":1", true, 7, []string{"x", "y"}, 3*time.Second, "n"
	want.Seg.Preset, want.Seg.Part, want.Seg.Window, want.Seg.Deep.Ratio = "low", ms(200*time.Millisecond), 9, 0.25
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			require.NoError(t, Load(&c, tc.src(t)))
			require.Equal(t, want, c)
		})
	}
}

func TestEmptyValues(t *testing.T) {
	// An empty string zeroes a TextUnmarshaler and empties a list; a null
	// (or a branch with nothing under it) keeps the default.
	c := defaults()
	require.NoError(t, Load(&c, Source{File: writeFile(t, "segmenter:\n  part_duration: \"\"\nhosts: []\n")}))
	require.Zero(t, c.Seg.Part)
	require.Empty(t, c.Hosts)

	c = defaults()
	require.NoError(t, Load(&c, Source{File: writeFile(t, "segmenter:\nlisten:\n")}))
	require.Equal(t, defaults(), c)

	c = defaults()
	require.NoError(t, Load(&c, Source{EnvPrefix: "A_", Environ: []string{"A_SEGMENTER_PART_DURATION=", "A_HOSTS=", "A_LISTEN="}}))
	require.Zero(t, c.Seg.Part)
	require.Empty(t, c.Hosts)
	require.Empty(t, c.Listen)
}

func TestEmptyFile(t *testing.T) {
	for _, body := range []string{"", "\n\n", "# only a comment\n", "---\n", "~\n", "{}\n"} {
		t.Run(fmt.Sprintf("%q", body), func(t *testing.T) {
			c := defaults()
			require.NoError(t, Load(&c, Source{File: writeFile(t, body)}))
			require.Equal(t, defaults(), c)
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // substrings of the error, besides the file name
	}{
		{"unknown top key", "listen: x\nlistne: y\n", []string{":2:", `unknown key "listne"`, "listen, debug"}},
		{"unknown nested key", "segmenter:\n  preset: low\n  part_duraton: 1s\n", []string{":3:", `"segmenter.part_duraton"`}},
		{"dash key is not a key", "Skip: x\n", []string{`unknown key "Skip"`}},
		{"bad text value", "segmenter:\n  part_duration: fast\n", []string{":2:", "segmenter.part_duration", `"fast" is not a duration`}},
		{"bad int", "\nmax_streams: many\n", []string{":2:", "max_streams", "!!str `many`"}},
		{"bad bool", "debug: maybe\n", []string{":1:", "debug"}},
		{"list for scalar", "listen: [a]\n", []string{":1:", "listen"}},
		{"scalar for branch", "segmenter: low\n", []string{":1:", "segmenter must be a mapping"}},
		{"list at top", "- a\n", []string{":1:", "top level must be a mapping"}},
		{"repeated key", "listen: a\nlisten: b\n", []string{":2:", "appears twice"}},
		{"syntax", "listen: a\n  bad: [\n", []string{"line"}},
		{"two documents", "listen: a\n---\nlisten: b\n", []string{"more than one YAML document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, tc.body)
			c := defaults()
			err := Load(&c, Source{File: file})
			require.Error(t, err)
			t.Log(err)
			require.Contains(t, err.Error(), file)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}

	err := Load(&testConf{}, Source{File: filepath.Join(t.TempDir(), "missing.yaml")})
	require.ErrorContains(t, err, "missing.yaml")
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		env  string
		name string
	}{
		{"A_MAX_STREAMS=lots", "A_MAX_STREAMS"},
		{"A_MAX_STREAMS=1.5", "A_MAX_STREAMS"},
		{"A_DEBUG=perhaps", "A_DEBUG"},
		{"A_TIMEOUT=3", "A_TIMEOUT"},
		{"A_SEGMENTER_PART_DURATION=soon", "A_SEGMENTER_PART_DURATION"},
		{"A_SEGMENTER_DEEP_RATIO=x", "A_SEGMENTER_DEEP_RATIO"},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			c := defaults()
			err := Load(&c, Source{EnvPrefix: "A_", Environ: []string{tc.env}})
			require.Error(t, err)
			t.Log(err)
			require.Contains(t, err.Error(), "environment variable "+tc.name+" ")
		})
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"bad value", Source{Flags: flags(t, "--max=lots"), FlagKeys: flagKeys}, "flag --max "},
		{"wrong type for key", Source{Flags: flags(t, "--part=1s"), FlagKeys: map[string]string{"part": "segmenter.window"}}, "flag --part "},
		{"undefined flag", Source{Flags: flags(t), FlagKeys: map[string]string{"nope": "listen"}}, "flag --nope is not defined"},
		{"unknown key", Source{Flags: flags(t), FlagKeys: map[string]string{"listen": "lisen"}}, `flag --listen maps to unknown key "lisen"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			require.ErrorContains(t, Load(&c, tc.src), tc.want)
		})
	}
}

func TestBadDestination(t *testing.T) {
	var nilConf *testConf
	for _, dst := range []any{nil, testConf{}, nilConf, new(int)} {
		require.Error(t, Load(dst, Source{}))
	}
	type withMap struct {
		M map[string]string `yaml:"m"`
	}
	require.ErrorContains(t, Load(&withMap{}, Source{}), "key m: unsupported field type")
}

func FuzzLoadYAML(f *testing.F) {
	for _, s := range []string{
		"", "listen: \":1\"\nsegmenter:\n  part_duration: 200ms\n  deep: {ratio: 2}\n",
		"hosts: [a, b]\nmax_streams: 0x10\n", "a: &x {b: *x}\n", "segmenter: &s {preset: low}\nlisten: *s\n",
		"- a\n", "~", "segmenter:\n  <<: {preset: low}\n", "debug: yes\ntimeout: 1h\n",
		"---\n---\n", "listen: !!binary aGVsbG8=\n", "segmenter: {window: 99999999999999999999}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaults()
		err := decodeYAML(mustStruct(t, &c), "fuzz.yaml", data)
		if err != nil && !strings.Contains(err.Error(), "fuzz.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func mustStruct(t *testing.T, dst any) reflect.Value {
	v, err := structValue(dst)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestErrorLeavesDestination(t *testing.T) {
	c := defaults()
	err := Load(&c, Source{
		File:      writeFile(t, "listen: \":1\"\nhosts: [z]\n"),
		EnvPrefix: "A_", Environ: []string{"A_MAX_STREAMS=lots"},
	})
	require.Error(t, err)
	require.Equal(t, defaults(), c)
}
