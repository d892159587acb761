package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

const fakeToken = "s3cret-admin-token"

// fakeAdmin implements the origin's admin API contract in memory.
type fakeAdmin struct {
	t    *testing.T
	srv  *httptest.Server
	host string // host name of srv, for the ingest URLs

	mu   sync.Mutex
	bs   map[string]*fakeBroadcast
	seq  int
	seen []string // "METHOD PATH" of every authorised request
}

type fakeBroadcast struct {
	name, state, key string
	created          time.Time
	liveSince        time.Time
	codec            string
	bitrate          int
	msn, part        int
}

func newFakeAdmin(t *testing.T) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{t: t, bs: map[string]*fakeBroadcast{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/broadcasts", f.create)
	mux.HandleFunc("GET /api/v1/broadcasts", f.list)
	mux.HandleFunc("GET /api/v1/broadcasts/{name}", f.get)
	mux.HandleFunc("POST /api/v1/broadcasts/{name}/stop", f.stop)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeToken {
			writeFakeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid or missing bearer token"})
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	u, err := url.Parse(f.srv.URL)
	require.NoError(t, err)
	f.host = u.Hostname()
	return f
}

func writeFakeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// object renders a broadcast as the API does; withKey only for the 201.
func (f *fakeAdmin) object(b *fakeBroadcast, withKey bool) map[string]any {
	q := ""
	ingest := map[string]any{
		"rtmp_server": fmt.Sprintf("rtmp://%s:1935/live", f.host),
	}
	if withKey {
		q = "?key=" + b.key
		ingest["rtmp_stream_key"] = b.name + q
	}
	ingest["rtmp"] = fmt.Sprintf("rtmp://%s:1935/live/%s%s", f.host, b.name, q)
	ingest["http"] = fmt.Sprintf("%s/ingest/%s%s", f.srv.URL, b.name, q)
	o := map[string]any{
		"name":           b.name,
		"state":          b.state,
		"created_at":     b.created.Format(time.RFC3339),
		"uptime_seconds": 0.0,
		"codec":          b.codec,
		"bitrate_bps":    b.bitrate,
		"media_sequence": b.msn,
		"part":           b.part,
		"ingest":         ingest,
		"playback":       fmt.Sprintf("%s/live/%s/index.m3u8", f.srv.URL, b.name),
		"future_field":   map[string]any{"clients must": "ignore this"},
	}
	if !b.liveSince.IsZero() {
		o["live_since"] = b.liveSince.Format(time.RFC3339)
		o["uptime_seconds"] = 72.4
	}
	if withKey {
		o["key"] = b.key
	}
	return o
}

func (f *fakeAdmin) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields() // the client must send exactly the contract
	if err := dec.Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
		writeFakeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad request body"})
		return
	}
	if req.Name == "" || strings.ToLower(req.Name) != req.Name {
		writeFakeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid broadcast name"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.bs[req.Name]; ok && b.state != "ended" {
		writeFakeJSON(w, http.StatusConflict, map[string]any{"error": "broadcast exists"})
		return
	}
	f.seq++
	b := &fakeBroadcast{name: req.Name, state: "created", key: fmt.Sprintf("key-%d-xyz", f.seq),
		created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.bs[req.Name] = b
	writeFakeJSON(w, http.StatusCreated, f.object(b, true))
}

func (f *fakeAdmin) list(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, b := range f.bs {
		out = append(out, f.object(b, false))
	}
	writeFakeJSON(w, http.StatusOK, map[string]any{"broadcasts": out})
}

func (f *fakeAdmin) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bs[r.PathValue("name")]
	if !ok {
		writeFakeJSON(w, http.StatusNotFound, map[string]any{"error": "no such broadcast"})
		return
	}
	writeFakeJSON(w, http.StatusOK, f.object(b, false))
}

func (f *fakeAdmin) stop(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bs[r.PathValue("name")]
	if !ok {
		writeFakeJSON(w, http.StatusNotFound, map[string]any{"error": "no such broadcast"})
		return
	}
	b.state, b.liveSince, b.bitrate = "ended", time.Time{}, 0
	writeFakeJSON(w, http.StatusOK, f.object(b, false))
}

// add puts a broadcast straight into the fake; live ones get stats.
func (f *fakeAdmin) add(name, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := &fakeBroadcast{name: name, state: state, key: "k-" + name, created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if state == "live" {
		b.liveSince = b.created.Add(time.Minute)
		b.codec, b.bitrate, b.msn, b.part = "AAC-LC 48000 Hz 1ch", 64000, 12, 3
	}
	f.bs[name] = b
}

// runBroadcastCLI runs `amphi broadcast ARGS...` under a root shaped like
// amphi's, with AMPHI_SERVER and AMPHI_TOKEN cleared unless env sets them.
func runBroadcastCLI(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	t.Setenv("AMPHI_SERVER", env["AMPHI_SERVER"])
	t.Setenv("AMPHI_TOKEN", env["AMPHI_TOKEN"])
	root := &cobra.Command{Use: "amphi", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newBroadcastCmd())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"broadcast"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// exitCode is what main would exit with for err.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// cellStarts returns where each table cell begins (cells are separated by
// two or more spaces; a cell may hold single spaces).
func cellStarts(line string) []int {
	var starts []int
	for _, loc := range regexp.MustCompile(`\S+(?: \S+)*`).FindAllStringIndex(line, -1) {
		starts = append(starts, loc[0])
	}
	return starts
}

func TestBroadcastCommands(t *testing.T) {
	f := newFakeAdmin(t)
	f.add("studio", "live")
	f.add("backup", "created")
	conn := []string{"--server", f.srv.URL, "--token", fakeToken}

	tests := []struct {
		name    string
		args    []string
		code    int
		out     []string // substrings of stdout
		notOut  []string // not in stdout
		errHas  []string // substrings of the error
		ownConn bool     // args carry their own --server/--token
		checkFn func(t *testing.T, out string)
	}{
		{
			name: "start prints key and URLs",
			args: []string{"start", "news"},
			out: []string{
				"news", "key-1-xyz", "shown only once",
				"rtmp://" + f.host + ":1935/live/news?key=key-1-xyz",
				"OBS server:", "rtmp://" + f.host + ":1935/live\n",
				"OBS stream key:", "news?key=key-1-xyz",
				f.srv.URL + "/ingest/news?key=key-1-xyz",
				f.srv.URL + "/live/news/index.m3u8",
			},
		},
		{
			name: "start --json prints the object with its key",
			args: []string{"start", "--json", "radio"},
			checkFn: func(t *testing.T, out string) {
				var o map[string]any
				require.NoError(t, json.Unmarshal([]byte(out), &o), out)
				require.Equal(t, "radio", o["name"])
				require.Equal(t, "key-2-xyz", o["key"])
				require.Contains(t, o, "future_field", "--json keeps fields the client does not know")
			},
		},
		{
			name:   "start an existing broadcast conflicts",
			args:   []string{"start", "studio"},
			code:   1,
			errHas: []string{"409", "already exists"},
		},
		{
			name:   "list prints a table",
			args:   []string{"list"},
			out:    []string{"NAME", "STATE", "CODEC", "BITRATE", "UPTIME", "studio", "live", "AAC-LC 48000 Hz 1ch", "64 kb/s", "1m12s", "backup", "created"},
			notOut: []string{"key"},
			checkFn: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				require.Regexp(t, `^NAME\s+STATE\s+CODEC\s+BITRATE\s+UPTIME$`, lines[0])
				require.Regexp(t, `^backup\s+created\s+-\s+-\s+-$`, lines[1], "sorted by name")
				want := cellStarts(lines[0])
				require.Len(t, want, 5)
				for _, l := range lines[1:] {
					require.Equal(t, want, cellStarts(l), "aligned: %q", l)
				}
			},
		},
		{
			name: "list --json",
			args: []string{"list", "--json"},
			checkFn: func(t *testing.T, out string) {
				var o struct {
					Broadcasts []map[string]any `json:"broadcasts"`
				}
				require.NoError(t, json.Unmarshal([]byte(out), &o), out)
				require.GreaterOrEqual(t, len(o.Broadcasts), 2)
				for _, b := range o.Broadcasts {
					require.NotContains(t, b, "key")
				}
			},
		},
		{
			name: "status prints aligned key: value lines",
			args: []string{"status", "studio"},
			out: []string{"studio", "live", "AAC-LC 48000 Hz 1ch", "64 kb/s", "1m12s",
				f.srv.URL + "/live/studio/index.m3u8"},
			notOut: []string{"k-studio"},
			checkFn: func(t *testing.T, out string) {
				fields := map[string]string{}
				col := -1
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					k, v, ok := strings.Cut(l, ":")
					require.True(t, ok, l)
					start := len(l) - len(strings.TrimLeft(v, " "))
					if col == -1 {
						col = start
					}
					require.Equal(t, col, start, "values aligned: %q", l)
					fields[k] = strings.TrimSpace(v)
				}
				require.Equal(t, "live", fields["state"])
				require.Equal(t, "AAC-LC 48000 Hz 1ch", fields["codec"])
				require.Equal(t, "64 kb/s", fields["bitrate"])
				require.Equal(t, "1m12s", fields["uptime"])
				require.Equal(t, "12", fields["media sequence"])
				require.Equal(t, "3", fields["part"])
				require.Equal(t, f.srv.URL+"/live/studio/index.m3u8", fields["playback"])
			},
		},
		{
			name: "status --json",
			args: []string{"status", "studio", "--json"},
			checkFn: func(t *testing.T, out string) {
				var o map[string]any
				require.NoError(t, json.Unmarshal([]byte(out), &o), out)
				require.Equal(t, "live", o["state"])
				require.EqualValues(t, 64000, o["bitrate_bps"])
				require.NotContains(t, o, "key")
			},
		},
		{
			name:   "status of an unknown broadcast",
			args:   []string{"status", "nope"},
			code:   1,
			errHas: []string{"nope", "not found", "404"},
		},
		{
			name:   "stop of an unknown broadcast",
			args:   []string{"stop", "nope"},
			code:   1,
			errHas: []string{"not found"},
		},
		{
			name:   "invalid name is a usage error",
			args:   []string{"start", "Bad/Name"},
			code:   2,
			errHas: []string{"invalid broadcast name"},
		},
		{
			name: "missing name is a usage error",
			args: []string{"status"},
			code: 2,
		},
		{
			name: "extra arguments are a usage error",
			args: []string{"list", "extra"},
			code: 2,
		},
		{
			name: "unknown flag is a usage error",
			args: []string{"list", "--bogus"},
			code: 2,
		},
		{
			name: "unknown subcommand is a usage error",
			args: []string{"frobnicate"},
			code: 2,
		},
		{
			name: "non-positive timeout is a usage error",
			args: []string{"list", "--timeout", "0s"},
			code: 2,
		},
		{
			name:    "bad server URL is a usage error",
			args:    []string{"list", "--server", "ftp://example.com", "--token", fakeToken},
			ownConn: true,
			code:    2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string(nil), tc.args...)
			if !tc.ownConn {
				args = append(args, conn...)
			}
			out, _, err := runBroadcastCLI(t, nil, args...)
			require.Equal(t, tc.code, exitCode(err), "err: %v\nout: %s", err, out)
			for _, s := range tc.out {
				require.Contains(t, out, s)
			}
			for _, s := range tc.notOut {
				require.NotContains(t, out, s)
			}
			for _, s := range tc.errHas {
				require.ErrorContains(t, err, s)
			}
			if tc.checkFn != nil {
				tc.checkFn(t, out)
			}
		})
	}
}

func TestBroadcastStopThenStatusShowsEnded(t *testing.T) {
	f := newFakeAdmin(t)
	conn := []string{"--server", f.srv.URL, "--token", fakeToken}
	run := func(args ...string) string {
		out, _, err := runBroadcastCLI(t, nil, append(args, conn...)...)
		require.NoError(t, err)
		return out
	}
	run("start", "studio")
	out := run("stop", "studio")
	require.Contains(t, out, "studio")
	require.Contains(t, out, "ended")
	out = run("status", "studio")
	require.Regexp(t, `(?m)^state:\s+ended$`, out)
	require.NotContains(t, out, "key-1-xyz")

	// Once ended, the name can be started again.
	out = run("start", "studio")
	require.Contains(t, out, "key-2-xyz")

	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, []string{
		"POST /api/v1/broadcasts",
		"POST /api/v1/broadcasts/studio/stop",
		"GET /api/v1/broadcasts/studio",
		"POST /api/v1/broadcasts",
	}, f.seen)
}

func TestBroadcastTokenErrors(t *testing.T) {
	f := newFakeAdmin(t)

	_, _, err := runBroadcastCLI(t, nil, "list", "--server", f.srv.URL)
	require.Equal(t, 2, exitCode(err), "missing token: %v", err)
	require.ErrorContains(t, err, "--token")
	require.ErrorContains(t, err, "AMPHI_TOKEN")

	_, _, err = runBroadcastCLI(t, nil, "status", "studio", "--server", f.srv.URL, "--token", "wrong")
	require.Equal(t, 1, exitCode(err), "wrong token: %v", err)
	require.ErrorContains(t, err, "401")
	require.ErrorContains(t, err, "token is wrong or missing")
	require.NotContains(t, err.Error(), "wrong "+fakeToken, "the token is never echoed")

	// The flag beats the environment.
	_, _, err = runBroadcastCLI(t, map[string]string{"AMPHI_TOKEN": fakeToken},
		"list", "--server", f.srv.URL, "--token", "wrong")
	require.ErrorContains(t, err, "401")
}

func TestBroadcastEnvironment(t *testing.T) {
	f := newFakeAdmin(t)
	f.add("studio", "live")
	out, _, err := runBroadcastCLI(t, map[string]string{"AMPHI_SERVER": f.srv.URL, "AMPHI_TOKEN": fakeToken}, "status", "studio")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^state:\s+live$`, out)

	// A bare host:port in AMPHI_SERVER means http://, and a trailing slash is fine.
	hostport := strings.TrimPrefix(f.srv.URL, "http://")
	out, _, err = runBroadcastCLI(t, map[string]string{"AMPHI_SERVER": hostport + "/", "AMPHI_TOKEN": fakeToken}, "list")
	require.NoError(t, err)
	require.Contains(t, out, "studio")
}

func TestBroadcastServerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, _, err = runBroadcastCLI(t, nil, "list", "--server", "http://"+addr, "--token", fakeToken)
	require.Equal(t, 1, exitCode(err))
	require.ErrorContains(t, err, "not reachable at http://"+addr)
	require.ErrorContains(t, err, "--server")
}

func TestBroadcastAwkwardServers(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		args    []string
		errHas  []string
	}{
		{
			name: "slow server hits --timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			args:   []string{"list", "--timeout", "100ms"},
			errHas: []string{"no answer", "100ms"},
		},
		{
			name: "oversized answer is refused",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"broadcasts":[],"pad":"`)
				w.Write(bytes.Repeat([]byte("x"), 2<<20))
				fmt.Fprint(w, `"}`)
			},
			args:   []string{"list"},
			errHas: []string{"larger than"},
		},
		{
			name:    "no admin API (plain 404)",
			handler: http.NotFound,
			args:    []string{"status", "studio"},
			errHas:  []string{"no admin API", "404"},
		},
		{
			name: "server error message is passed on",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				writeFakeJSON(w, http.StatusInternalServerError, map[string]any{"error": "disk full"})
			},
			args:   []string{"start", "studio"},
			errHas: []string{"500", "disk full"},
		},
		{
			name: "not JSON",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprint(w, "<html>hello</html>")
			},
			args:   []string{"list"},
			errHas: []string{"not a JSON object"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			_, _, err := runBroadcastCLI(t, nil, append(tc.args, "--server", srv.URL, "--token", fakeToken)...)
			require.Equal(t, 1, exitCode(err), "%v", err)
			for _, s := range tc.errHas {
				require.ErrorContains(t, err, s)
			}
		})
	}
}
