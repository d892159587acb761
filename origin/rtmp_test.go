package origin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/stretchr/testify/require"
)

// rtmpLogs collects an origin's log output for assertions.
type rtmpLogs struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	panics int
}

func (l *rtmpLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("AMPHI_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	if bytes.Contains(p, []byte("panicked")) {
		l.panics++
	}
	if l.buf.Len() < 1<<20 { // fuzzing logs without end
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *rtmpLogs) panicked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.panics
}

func (l *rtmpLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// rtmpTestOrigin is an origin with managed broadcasts only (stream keys
// required) and debug logs captured, serving HTTP and RTMP on loopback ports
// until the test ends.
type rtmpTestOrigin struct {
	srv  *Server
	base string // http://127.0.0.1:PORT
	rtmp string // rtmp://127.0.0.1:PORT
	logs *rtmpLogs
}

func rtmpStart(tb testing.TB) *rtmpTestOrigin {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Data = tb.TempDir()
	cfg.Segmenter.Preset = "low"
	cfg.Ingest.ReadTimeout = Duration(5 * time.Second)
	cfg.Ingest.Open = false
	cfg.RTMP.Listen = "" // ServeListeners gets a loopback listener instead
	o := &rtmpTestOrigin{logs: &rtmpLogs{}}
	var err error
	o.srv, err = New(cfg, slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(tb, err)

	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	rtmpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	o.base, o.rtmp = "http://"+httpLn.Addr().String(), "rtmp://"+rtmpLn.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.srv.ServeListeners(ctx, httpLn, rtmpLn) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("origin stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			tb.Errorf("origin (HTTP and RTMP) did not stop within 10s of the context ending")
		}
	})
	return o
}

// rtmpWaitLive polls url until it answers 200 (at most 15 s) and returns the
// body, failing early when pub exits first.
func rtmpWaitLive(t *testing.T, url string, pub *ffProc) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if pub != nil {
			select {
			case <-pub.done:
				require.FailNow(t, "publisher exited before the stream went live", "%v\n%s", pub.err, pub.stderr.String())
			default:
			}
		}
		if code, body := ffGet(t, url, 5*time.Second); code == http.StatusOK {
			return string(body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.FailNow(t, "stream did not go live", "%s did not answer 200 within 15s", url)
	return ""
}

// rtmpFFmpegArgs publishes seconds of sine as AAC in FLV in real time to url.
func rtmpFFmpegArgs(url string, seconds int) []string {
	args := append([]string{"-v", "error", "-re"}, ffSineInput(seconds)...)
	args = append(args, ffAACArgs...)
	return append(args, "-f", "flv", url)
}

func TestRTMPFFmpegPublishAndPlay(t *testing.T) {
	ffNeed(t)
	t.Parallel()
	o := rtmpStart(t)
	key, err := o.srv.CreateBroadcast("rtmp-aac")
	require.NoError(t, err)

	// ffmpeg's form of the URL: the key rides in the stream name.
	pub := ffStart(t, 40*time.Second, rtmpFFmpegArgs(o.rtmp+"/live/rtmp-aac?key="+url.QueryEscape(key), 20)...)
	media := rtmpWaitLive(t, o.base+"/live/rtmp-aac/audio.m3u8", pub)
	require.Contains(t, media, "#EXT-X-PART:", "media playlist:\n%s", media)
	st, err := o.srv.Status("rtmp-aac")
	require.NoError(t, err)
	require.Equal(t, StateLive, st.State)
	require.Contains(t, st.Codec, "AAC-LC 48000 Hz 1ch")

	out, errOut, err := ffRun(t, 30*time.Second, "ffmpeg", "-nostdin", "-v", "error",
		"-i", o.base+"/live/rtmp-aac/index.m3u8", "-t", "5",
		"-progress", "pipe:1", "-nostats", "-f", "null", "-")
	require.NoError(t, err, "player stderr:\n%s", errOut)
	require.Empty(t, errOut, "the player reported errors")
	require.GreaterOrEqual(t, ffProgressTime(t, out), 4500*time.Millisecond, "decoded media")

	select {
	case <-pub.done:
		require.FailNow(t, "publisher stopped early", "%v\n%s", pub.err, pub.stderr.String())
	default:
	}
	require.Contains(t, o.logs.String(), "rtmp ingest started")
}

func TestRTMPWrongKeyRefused(t *testing.T) {
	ffNeed(t)
	t.Parallel()
	o := rtmpStart(t)
	_, err := o.srv.CreateBroadcast("rtmp-key")
	require.NoError(t, err)

	start := time.Now()
	pub := ffStart(t, 30*time.Second, rtmpFFmpegArgs(o.rtmp+"/live/rtmp-key?key=WRONG", 20)...)
	pub.wait(t, 10*time.Second)
	require.Error(t, pub.err, "ffmpeg must fail; stderr:\n%s", pub.stderr.String())
	require.Less(t, pub.exited.Sub(start), 5*time.Second, "refused only after %v", pub.exited.Sub(start))
	require.Contains(t, pub.stderr.String(), ErrBadKey.Error())

	st, err := o.srv.Status("rtmp-key")
	require.NoError(t, err)
	require.Equal(t, StateCreated, st.State)
	code, _ := ffGet(t, o.base+"/live/rtmp-key/audio.m3u8", 5*time.Second)
	require.Equal(t, http.StatusNotFound, code)
	logs := o.logs.String()
	require.Contains(t, logs, "level=WARN msg=\"rtmp publish refused\"")
	require.Contains(t, logs, "reason=\"wrong stream key\"")
}

func TestRTMPGarbageThenValidPublisher(t *testing.T) {
	t.Parallel()
	o := rtmpStart(t)
	key, err := o.srv.CreateBroadcast("rtmp-garbage")
	require.NoError(t, err)

	for seed := range uint64(3) {
		garbage := make([]byte, 64<<10)
		rand.NewChaCha8([32]byte{byte(seed)}).Read(garbage)
		if seed == 2 {
			garbage[0] = 3 // a plain handshake, then junk chunks
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(o.rtmp, "rtmp://"))
		require.NoError(t, err)
		start := time.Now()
		go conn.Write(garbage) //nolint:errcheck // the server may hang up mid-write
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(rtmpSetupTimeout+5*time.Second)))
		_, err = io.Copy(io.Discard, conn) // until the server closes
		conn.Close()
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "seed %d: the server kept the connection open", seed)
		t.Logf("seed %d: closed after %v (%v)", seed, time.Since(start).Round(time.Millisecond), err)
	}

	// A valid publisher is still served.
	done := make(chan error, 1)
	go func() { done <- rtmpPublishOpus(t, o.rtmp+"/live", "rtmp-garbage?key="+key, 3, 0, nil) }()
	rtmpWaitLive(t, o.base+"/live/rtmp-garbage/audio.m3u8", nil)
	require.NoError(t, <-done)
	require.Contains(t, o.logs.String(), "rtmp handshake failed")
	require.Zero(t, o.logs.panicked())
}

// rtmpPublishOpus publishes seconds of Opus frames in real time with
// gortmplib, using OBS's form: server (rtmp://HOST/live) and stream key
// (NAME?key=KEY). It then holds the connection open, silent, for hold.
// record, when set, gets every byte the client sends.
func rtmpPublishOpus(t testing.TB, server, streamKey string, seconds int, hold time.Duration, record io.Writer) error {
	u, err := url.Parse(server + "#" + streamKey)
	require.NoError(t, err)
	c := &gortmplib.Client{URL: u, Publish: true}
	if record != nil {
		c.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return &rtmpRecordConn{Conn: conn, w: record}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	defer c.Close()
	track := &gortmplib.Track{Codec: &codecs.Opus{IDHeader: &opus.IDHeader{
		Version: 1, ChannelCount: 2, PreSkip: 312, InputSampleRate: 48000,
	}}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{track}}
	if err := w.Initialize(); err != nil {
		return err
	}
	// 20 ms CELT fullband stereo frames (TOC 0xFC), 5 per 100 ms tick.
	frame := append([]byte{0xfc}, bytes.Repeat([]byte{0x55}, 80)...)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range seconds * 50 {
		if i%5 == 0 {
			<-tick.C
		}
		if err := w.WriteOpus(track, time.Duration(i)*20*time.Millisecond, frame); err != nil {
			return err
		}
	}
	time.Sleep(hold)
	return nil
}

// rtmpRecordConn copies what is written to a connection to w.
type rtmpRecordConn struct {
	net.Conn
	w io.Writer
}

func (c *rtmpRecordConn) Write(p []byte) (int, error) {
	c.w.Write(p)
	return c.Conn.Write(p)
}

func TestRTMPOpusPublishAndReconnect(t *testing.T) {
	t.Parallel()
	o := rtmpStart(t)
	key, err := o.srv.CreateBroadcast("rtmp-opus")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- rtmpPublishOpus(t, o.rtmp+"/live", "rtmp-opus?key="+key, 4, 0, nil) }()
	index := rtmpWaitLive(t, o.base+"/live/rtmp-opus/index.m3u8", nil)
	require.Contains(t, index, `CODECS="opus"`)
	st, err := o.srv.Status("rtmp-opus")
	require.NoError(t, err)
	require.Equal(t, StateLive, st.State)
	require.Equal(t, "Opus 48000 Hz 2ch", st.Codec)
	require.NoError(t, <-done)

	// The publisher hung up: the broadcast waits for it.
	require.Eventually(t, func() bool {
		st, err := o.srv.Status("rtmp-opus")
		return err == nil && st.State == StateReconnecting
	}, 5*time.Second, 50*time.Millisecond)

	// It comes back and continues the same playlist.
	go func() { done <- rtmpPublishOpus(t, o.rtmp+"/live", "rtmp-opus?key="+key, 3, 0, nil) }()
	require.Eventually(t, func() bool {
		st, err := o.srv.Status("rtmp-opus")
		return err == nil && st.State == StateLive
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, <-done)
	require.Contains(t, o.logs.String(), "publisher reconnected")
}

func TestRTMPSilentPublisherDropped(t *testing.T) {
	t.Parallel()
	o := rtmpStart(t) // read timeout 5s
	key, err := o.srv.CreateBroadcast("rtmp-silent")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- rtmpPublishOpus(t, o.rtmp+"/live", "rtmp-silent?key="+key, 3, 8*time.Second, nil) }()
	rtmpWaitLive(t, o.base+"/live/rtmp-silent/index.m3u8", nil)
	require.Eventually(t, func() bool {
		st, err := o.srv.Status("rtmp-silent")
		return err == nil && st.State == StateReconnecting
	}, 8*time.Second, 50*time.Millisecond, "a silent publisher must be dropped")
	require.Contains(t, o.logs.String(), "rtmp ingest dropped: publisher sent nothing")
	require.NoError(t, <-done)
}

func TestRTMPStopCutsPublisherOff(t *testing.T) {
	t.Parallel()
	o := rtmpStart(t)
	key, err := o.srv.CreateBroadcast("rtmp-stop")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- rtmpPublishOpus(t, o.rtmp+"/live", "rtmp-stop?key="+key, 6, 0, nil) }()
	rtmpWaitLive(t, o.base+"/live/rtmp-stop/index.m3u8", nil)
	require.NoError(t, o.srv.StopBroadcast("rtmp-stop"))
	require.Eventually(t, func() bool {
		return strings.Contains(o.logs.String(), "rtmp ingest cut off: the broadcast was stopped")
	}, 5*time.Second, 50*time.Millisecond)
	<-done // the publisher fails or finishes; either way it is gone
	st, err := o.srv.Status("rtmp-stop")
	require.NoError(t, err)
	require.Equal(t, StateEnded, st.State)
}

func TestRTMPRefusals(t *testing.T) {
	t.Parallel()
	o := rtmpStart(t)
	key, err := o.srv.CreateBroadcast("rtmp-refuse")
	require.NoError(t, err)

	for _, tc := range []struct{ server, streamKey, reason string }{
		{o.rtmp + "/live", "rtmp-refuse?key=WRONG", ErrBadKey.Error()},
		{o.rtmp + "/live", "rtmp-refuse", ErrBadKey.Error()},
		{o.rtmp + "/live", "nobody?key=" + key, ErrUnknownBroadcast.Error()},
		{o.rtmp + "/live", "Bad_Name?key=" + key, ErrInvalidName.Error()},
		{o.rtmp + "/app", "rtmp-refuse?key=" + key, "publish to rtmp://HOST/live/NAME?key=KEY"},
	} {
		start := time.Now()
		err := rtmpPublishOpus(t, tc.server, tc.streamKey, 1, 0, nil)
		require.Error(t, err, "%s %s", tc.server, tc.streamKey)
		require.Less(t, time.Since(start), 2*time.Second, "%s %s", tc.server, tc.streamKey)
		require.Contains(t, o.logs.String(), tc.reason)
	}

	// Play is refused: playback is over LL-HLS.
	u, err := url.Parse(o.rtmp + "/live#rtmp-refuse")
	require.NoError(t, err)
	c := &gortmplib.Client{URL: u}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err == nil {
		r := &gortmplib.Reader{Conn: c}
		require.Error(t, r.Initialize())
		c.Close()
	}
	require.Contains(t, o.logs.String(), "rtmp play refused")
	st, err := o.srv.Status("rtmp-refuse")
	require.NoError(t, err)
	require.Equal(t, StateCreated, st.State)
}

func TestRTMPStreamKey(t *testing.T) {
	for _, tc := range []struct{ in, name, key string }{
		{"rtmp://h:1935/live/show?key=K2", "show", "K2"},
		{"rtmp://h/live/show", "show", ""},
		{"rtmp://h/live//show/?key=K", "show", "K"},
		{"rtmp://h/app/show?key=K", "", ""},
		{"rtmp://h/live?key=K", "", ""},
		{"rtmp://h/live/a/b?key=K", "a/b", "K"}, // refused later as an invalid name
	} {
		u, err := url.Parse(tc.in)
		require.NoError(t, err)
		name, key, err := rtmpStreamKey(u)
		if tc.name == "" {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.name, name, tc.in)
		require.Equal(t, tc.key, key, tc.in)
	}
}

// FuzzRTMPHandshake feeds arbitrary bytes to the per-connection handler over
// a net.Pipe: it must neither panic nor hang. One seed is a whole recorded
// publish with a valid key, so mutations reach the track probe and ingest.
func FuzzRTMPHandshake(f *testing.F) {
	o := rtmpStart(f)
	key, err := o.srv.CreateBroadcast("fuzz")
	require.NoError(f, err)

	var rec bytes.Buffer
	require.NoError(f, rtmpPublishOpus(f, o.rtmp+"/live", "fuzz?key="+key, 3, 0, &rec))
	f.Add(rec.Bytes())
	f.Add(rec.Bytes()[:1537+1536+200])
	f.Add([]byte{})
	f.Add([]byte{3})
	f.Add([]byte{6})
	junk := make([]byte, 8<<10)
	rand.NewChaCha8([32]byte{42}).Read(junk)
	f.Add(junk)

	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			o.srv.serveRTMPConn(server)
		}()
		go io.Copy(io.Discard, client) //nolint:errcheck // drains the server's replies
		_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection handler did not return")
		}
		require.Zero(t, o.logs.panicked(), "the handler panicked:\n%s", o.logs.String())
	})
}
