package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const lcToken = "test-token-123"

// lcOrigin is an origin with the admin API on and stream keys required.
type lcOrigin struct {
	srv  *Server
	base string
	stop func()
}

// startManagedOrigin runs an origin on dir with keys required; stop ends it
// (the test may start another on the same dir to check persistence).
func startManagedOrigin(t *testing.T, dir string) *lcOrigin {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = dir
	cfg.Segmenter.Preset = "low"
	cfg.RTMP.Listen = ""
	cfg.API.Token = lcToken
	cfg.Ingest.ReconnectGrace = Duration(2 * time.Second)
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	o := &lcOrigin{srv: srv, base: "http://" + ln.Addr().String()}
	stopped := false
	o.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("origin did not stop")
		}
	}
	t.Cleanup(o.stop)
	return o
}

func (o *lcOrigin) api(t *testing.T, method, path, token string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, o.base+path, bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	require.NoError(t, json.Unmarshal(raw, &out), "non-JSON answer: %s", raw)
	return res.StatusCode, out
}

func TestAdminAPIRefusals(t *testing.T) {
	t.Parallel()
	o := startManagedOrigin(t, t.TempDir())
	code, _ := o.api(t, "POST", "/api/v1/broadcasts", lcToken, []byte(`{"name":"taken"}`))
	require.Equal(t, http.StatusCreated, code)

	for _, tc := range []struct {
		name, method, path, token, body string
		code                            int
		want                            string
	}{
		{"no token", "GET", "/api/v1/broadcasts", "", "", 401, "token"},
		{"wrong token", "GET", "/api/v1/broadcasts", "nope", "", 401, "token"},
		{"wrong token on start", "POST", "/api/v1/broadcasts", "nope", `{"name":"x"}`, 401, "token"},
		{"invalid name", "POST", "/api/v1/broadcasts", lcToken, `{"name":"Bad Name"}`, 400, "invalid broadcast name"},
		{"empty name", "POST", "/api/v1/broadcasts", lcToken, `{"name":""}`, 400, "invalid broadcast name"},
		{"long name", "POST", "/api/v1/broadcasts", lcToken, `{"name":"` + strings.Repeat("a", 65) + `"}`, 400, "invalid"},
		{"malformed JSON", "POST", "/api/v1/broadcasts", lcToken, `{"name":`, 400, "malformed JSON"},
		{"unknown field", "POST", "/api/v1/broadcasts", lcToken, `{"name":"a","x":1}`, 400, "malformed JSON"},
		{"trailing data", "POST", "/api/v1/broadcasts", lcToken, `{"name":"a"} {}`, 400, "malformed JSON"},
		{"oversized", "POST", "/api/v1/broadcasts", lcToken, `{"name":"` + strings.Repeat("a", 8<<10) + `"}`, 413, "larger"},
		{"exists", "POST", "/api/v1/broadcasts", lcToken, `{"name":"taken"}`, 409, "already exists"},
		{"unknown status", "GET", "/api/v1/broadcasts/ghost", lcToken, "", 404, "no such broadcast"},
		{"unknown stop", "POST", "/api/v1/broadcasts/ghost/stop", lcToken, "", 404, "no such broadcast"},
		{"unknown endpoint", "GET", "/api/v1/nothing", lcToken, "", 404, "no such API"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := o.api(t, tc.method, tc.path, tc.token, []byte(tc.body))
			require.Equal(t, tc.code, code, "%v", out)
			require.Contains(t, out["error"], tc.want)
		})
	}
	// Nothing above disturbed the broadcast that exists.
	code, out := o.api(t, "GET", "/api/v1/broadcasts/taken", lcToken, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, StateCreated, out["state"])
	require.NotContains(t, out, "key", "the key is shown only once")
}

// lcPublish pushes numbered AAC over HTTP ingest until ctx ends.
func lcPublish(ctx context.Context, url string) (int, error) { return publishHTTP(ctx, url) }

func TestLifecycleKeysLiveStopAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := startManagedOrigin(t, dir)

	code, out := o.api(t, "POST", "/api/v1/broadcasts", lcToken, []byte(`{"name":"studio"}`))
	require.Equal(t, http.StatusCreated, code)
	key, _ := out["key"].(string)
	require.NotEmpty(t, key)
	ingest := out["ingest"].(map[string]any)["http"].(string)
	require.Contains(t, ingest, "/ingest/studio?key=")

	// Wrong, missing and unknown are refused before any media is read.
	for _, tc := range []struct {
		url  string
		code int
	}{
		{o.base + "/ingest/studio?key=wrong", http.StatusForbidden},
		{o.base + "/ingest/studio", http.StatusForbidden},
		{o.base + "/ingest/ghost?key=" + key, http.StatusNotFound},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := lcPublish(ctx, tc.url)
		cancel()
		require.NoError(t, err)
		require.Equal(t, tc.code, got, tc.url)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := make(chan int, 1)
	go func() {
		c, _ := lcPublish(ctx, ingest)
		pub <- c
	}()
	waitLive(t, o.base+"/live/studio/audio.m3u8")

	// A second publisher with the right key is refused: the first is live.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	got, err := lcPublish(ctx2, ingest)
	cancel2()
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, got)

	// status shows live with a bitrate once a segment or two exist.
	require.Eventually(t, func() bool {
		_, st := o.api(t, "GET", "/api/v1/broadcasts/studio", lcToken, nil)
		return st["state"] == StateLive && st["bitrate_bps"].(float64) > 0 && st["codec"] == "AAC-LC 48000 Hz 1ch"
	}, 10*time.Second, 100*time.Millisecond)

	// A held request is released by stop with ENDLIST.
	_, m := fetchPlaylist(t, o.base+"/live/studio/audio.m3u8")
	msn, _ := nextPart(m)
	held := make(chan string, 1)
	go func() {
		res, err := http.Get(fmt.Sprintf("%s/live/studio/audio.m3u8?_HLS_msn=%d", o.base, msn+1))
		if err != nil {
			held <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		held <- string(b)
	}()
	time.Sleep(200 * time.Millisecond)
	code, out = o.api(t, "POST", "/api/v1/broadcasts/studio/stop", lcToken, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, StateEnded, out["state"])
	select {
	case body := <-held:
		require.Contains(t, body, "#EXT-X-ENDLIST")
	case <-time.After(2 * time.Second):
		t.Fatal("stop did not release the held request")
	}
	select {
	case <-pub:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not cut off by stop")
	}

	// Restart: the list and the key hash survive.
	code, out = o.api(t, "POST", "/api/v1/broadcasts", lcToken, []byte(`{"name":"again"}`))
	require.Equal(t, http.StatusCreated, code)
	key2 := out["key"].(string)
	o.stop()
	o2 := startManagedOrigin(t, dir)
	code, list := o2.api(t, "GET", "/api/v1/broadcasts", lcToken, nil)
	require.Equal(t, http.StatusOK, code)
	states := map[string]any{}
	for _, b := range list["broadcasts"].([]any) {
		bm := b.(map[string]any)
		states[bm["name"].(string)] = bm["state"]
	}
	require.Equal(t, map[string]any{"studio": StateEnded, "again": StateCreated}, states)

	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	go lcPublish(ctx3, o2.base+"/ingest/again?key=wrong") //nolint:errcheck // refused: checked below
	go lcPublish(ctx3, o2.base+"/ingest/again?key="+key2) //nolint:errcheck // ends with ctx3
	waitLive(t, o2.base+"/live/again/audio.m3u8")
	_, st := o2.api(t, "GET", "/api/v1/broadcasts/again", lcToken, nil)
	require.Equal(t, StateLive, st["state"])
}

func TestReconnectContinuesPlaylistWithDiscontinuity(t *testing.T) {
	t.Parallel()
	o := startManagedOrigin(t, t.TempDir())
	_, out := o.api(t, "POST", "/api/v1/broadcasts", lcToken, []byte(`{"name":"flaky"}`))
	ingest := out["ingest"].(map[string]any)["http"].(string)
	url := o.base + "/live/flaky/audio.m3u8"

	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan struct{})
	go func() { defer close(done1); lcPublish(ctx1, ingest) }() //nolint:errcheck // cut below
	waitLive(t, url)
	_, before := fetchPlaylist(t, url)
	time.Sleep(1500 * time.Millisecond)
	cancel1() // the publisher drops
	<-done1

	require.Eventually(t, func() bool {
		_, st := o.api(t, "GET", "/api/v1/broadcasts/flaky", lcToken, nil)
		return st["state"] == StateReconnecting
	}, 5*time.Second, 50*time.Millisecond)

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go lcPublish(ctx2, ingest) //nolint:errcheck // ends with ctx2
	require.Eventually(t, func() bool {
		_, st := o.api(t, "GET", "/api/v1/broadcasts/flaky", lcToken, nil)
		return st["state"] == StateLive
	}, 5*time.Second, 50*time.Millisecond)

	// The same playlist (same URIs, same media sequence line) continues,
	// with a discontinuity, and keeps growing.
	var after string
	require.Eventually(t, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		after = string(b)
		return strings.Contains(after, "#EXT-X-DISCONTINUITY\n") && strings.Contains(after, "#EXT-X-DISCONTINUITY-SEQUENCE:")
	}, 10*time.Second, 100*time.Millisecond)
	require.Contains(t, after, before.Map.URI, "the init section (and so the session) changed")
	_, m := fetchPlaylist(t, url)
	msn, part := nextPart(m)
	res, err := http.Get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", url, msn, part))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "parts stopped after the reconnect")

	// Past the grace with no publisher, the state is ingest_lost.
	cancel2()
	require.Eventually(t, func() bool {
		_, st := o.api(t, "GET", "/api/v1/broadcasts/flaky", lcToken, nil)
		return st["state"] == StateIngestLost
	}, 8*time.Second, 100*time.Millisecond)
}
