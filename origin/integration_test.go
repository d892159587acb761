package origin

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/demo"
	"github.com/amphi-live/amphi/segmenter"
)

// received is what a gohlslib client got: access units with their pts.
type received struct {
	mu   sync.Mutex
	pts  []int64
	aus  [][]byte
	rate int
}

func (r *received) add(pts int64, aus [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, au := range aus {
		r.pts = append(r.pts, pts+int64(i)*1024)
		r.aus = append(r.aus, bytes.Clone(au))
	}
}

func (r *received) snapshot() ([]int64, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.pts...), append([][]byte(nil), r.aus...)
}

// readWithGohlslib plays url with gohlslib's client until it has received
// want of audio (at 48 kHz), failing after 40 s.
func readWithGohlslib(t *testing.T, url string, want time.Duration) *received {
	t.Helper()
	rec := &received{}
	c := &gohlslib.Client{
		URI: url,
		// Quiet: the default callbacks log every download.
		OnDownloadPrimaryPlaylist: func(string) {},
		OnDownloadStreamPlaylist:  func(string) {},
		OnDownloadSegment:         func(string) {},
		OnDownloadPart:            func(string) {},
		OnDecodeError:             func(err error) { t.Errorf("gohlslib decode error: %v", err) },
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			if _, ok := tr.Codec.(*codecs.MPEG4Audio); !ok {
				return fmt.Errorf("unexpected track codec %T", tr.Codec)
			}
			rec.rate = tr.ClockRate
			c.OnDataMPEG4Audio(tr, rec.add)
		}
		return nil
	}
	require.NoError(t, c.Start())
	defer c.Close()
	wantFrames := int(want * 48000 / time.Second / 1024)
	deadline := time.After(40 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-c.Wait():
			t.Fatalf("client stopped early: %v", err)
		case <-deadline:
			pts, _ := rec.snapshot()
			t.Fatalf("only %d of %d frames arrived within 40s", len(pts), wantFrames)
		case <-tick.C:
			if pts, _ := rec.snapshot(); len(pts) >= wantFrames {
				return rec
			}
		}
	}
}

// requireContinuous checks that pts grow by exactly one AAC frame each.
func requireContinuous(t *testing.T, pts []int64) {
	t.Helper()
	for i := 1; i < len(pts); i++ {
		require.Equal(t, int64(1024), pts[i]-pts[i-1], "pts gap or overlap at frame %d", i)
	}
}

// gohlslib's client plays from the preload hint and then reloads the playlist
// without blocking: if a further part completes in between, it skips that part
// (client_stream_downloader.go, runLowLatency). On a starved CI machine under
// -race that happens with 0.2 and 0.5 s parts, so these tests use the scale
// preset's 1 s parts; the server side is the same for every preset.

func TestGohlslibReadsDemoSource(t *testing.T) {
	t.Parallel()
	srv, base := startTestOrigin(t, "scale")
	src := &demo.Source{}
	asc, err := src.Config()
	require.NoError(t, err)
	sess, err := srv.Publish("demo", &segmenter.AAC{Config: asc})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Run(ctx, sess)
	}()
	t.Cleanup(func() { cancel(); <-done; sess.End() })

	rec := readWithGohlslib(t, base+"/live/demo/index.m3u8", 10*time.Second)
	pts, aus := rec.snapshot()
	require.Equal(t, 48000, rec.rate)
	requireContinuous(t, pts)

	// Every frame arrives once, in order: the received frames follow the
	// clip's frame sequence cyclically from wherever the client joined.
	frames := clipFrames(t)
	// The clip has runs of identical (silent) frames: align on a window
	// long enough to be unique.
	start := -1
	window := min(len(aus), 100)
	for i := range frames {
		match := true
		for j := 0; j < window && match; j++ {
			match = bytes.Equal(frames[(i+j)%len(frames)], aus[j])
		}
		if match {
			start = i
			break
		}
	}
	require.GreaterOrEqual(t, start, 0, "first received frame is not a clip frame")
	for i, au := range aus {
		require.Equal(t, frames[(start+i)%len(frames)], au, "frame %d out of sequence", i)
	}
}

// clipFrames returns the embedded demo clip's access units.
func clipFrames(t *testing.T) [][]byte {
	t.Helper()
	clip, err := os.ReadFile("../internal/demo/clip.aac")
	require.NoError(t, err)
	var pkts mpeg4audio.ADTSPackets
	require.NoError(t, pkts.Unmarshal(clip))
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		out[i] = p.AU
	}
	return out
}

// numberedAU is a synthetic access unit carrying its own index, so the reader
// can tell a lost, repeated or reordered frame. The segmenter does not decode
// AAC, and neither does gohlslib's client.
func numberedAU(i uint64) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, i)
	copy(b[8:], "amphi-test-frame")
	return b
}

// publishHTTP pushes numbered AAC frames as MPEG-TS in a chunked PUT to url,
// paced in real time, until ctx ends. It returns the HTTP status.
func publishHTTP(ctx context.Context, url string) (int, error) {
	pr, pw := io.Pipe()
	go func() {
		track := &mpegts.Track{Codec: &mpegts.CodecMPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1, ChannelConfig: 1,
		}}}
		w := &mpegts.Writer{W: pw, Tracks: []*mpegts.Track{track}}
		if err := w.Initialize(); err != nil {
			pw.CloseWithError(err)
			return
		}
		start := time.Now()
		frame := time.Second * 1024 / 48000
		for i := uint64(0); ; i++ {
			due := start.Add(time.Duration(i) * frame)
			select {
			case <-ctx.Done():
				pw.Close()
				return
			case <-time.After(time.Until(due)):
			}
			pts := int64(i) * 1024 * 90000 / 48000
			if err := w.WriteMPEG4Audio(track, pts, [][]byte{numberedAU(i)}); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	req, err := http.NewRequest(http.MethodPut, url, pr)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "video/mp2t")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

func TestGohlslibReadsHTTPPublisher(t *testing.T) {
	t.Parallel()
	_, base := startTestOrigin(t, "scale")
	ctx, cancel := context.WithCancel(context.Background())
	pubDone := make(chan int, 1)
	go func() {
		code, err := publishHTTP(ctx, base+"/ingest/numbered")
		if err != nil {
			t.Errorf("publisher: %v", err)
		}
		pubDone <- code
	}()
	waitLive(t, base+"/live/numbered/index.m3u8")

	rec := readWithGohlslib(t, base+"/live/numbered/index.m3u8", 10*time.Second)
	cancel()
	require.Equal(t, http.StatusNoContent, <-pubDone)

	pts, aus := rec.snapshot()
	first := binary.BigEndian.Uint64(aus[0])
	for i, au := range aus {
		require.Equal(t, numberedAU(first+uint64(i)), au, "frame %d lost, repeated or reordered (got %d)", i, binary.BigEndian.Uint64(au))
	}
	requireContinuous(t, pts)
}

// waitLive polls url until it answers 200, for at most 15 s.
func waitLive(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not go live within 15s", url)
}

// pacedSession publishes synthetic AAC into a new session of name until stop
// is closed, then leaves the session open (not ended).
func pacedSession(t *testing.T, srv *Server, name string, stop <-chan struct{}) *Session {
	t.Helper()
	sess, err := srv.Publish(name, &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1, ChannelConfig: 1,
	}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second * 1024 / 48000)
		defer tick.Stop()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := sess.WriteAAC(0, [][]byte{numberedAU(i)}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { <-done })
	return sess
}

func fetchPlaylist(t *testing.T, url string) (*http.Response, *playlist.Media) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	if res.StatusCode != http.StatusOK {
		return res, nil
	}
	var m playlist.Media
	require.NoError(t, m.Unmarshal(body), "playlist:\n%s", body)
	return res, &m
}

// nextPart returns the (msn, part) of the part after the last one listed.
func nextPart(m *playlist.Media) (uint64, int) {
	msn := uint64(m.MediaSequence + len(m.Segments))
	return msn, len(m.Parts)
}

func TestEndReleasesHeldRequestWithEndlist(t *testing.T) {
	t.Parallel()
	srv, base := startTestOrigin(t, "low")
	stop := make(chan struct{})
	sess := pacedSession(t, srv, "ending", stop)
	url := base + "/live/ending/audio.m3u8"
	waitLive(t, url)

	// Hold a request two segments ahead: it cannot be met before the end.
	_, m := fetchPlaylist(t, url)
	msn, _ := nextPart(m)
	type result struct {
		code int
		body string
		took time.Duration
	}
	resc := make(chan result, 1)
	go func() {
		start := time.Now()
		res, err := http.Get(fmt.Sprintf("%s?_HLS_msn=%d", url, msn+1))
		if err != nil {
			resc <- result{code: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		resc <- result{res.StatusCode, string(b), time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond) // let the request reach its hold
	close(stop)
	ended := time.Now()
	sess.End()

	select {
	case r := <-resc:
		require.Equal(t, http.StatusOK, r.code, r.body)
		require.Contains(t, r.body, "#EXT-X-ENDLIST")
		require.NotContains(t, r.body, "#EXT-X-PRELOAD-HINT")
		// Released by the end itself, not by the 3 s hold limit.
		require.Less(t, time.Since(ended), 2*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("held request was not released by the end of the broadcast")
	}

	// From now on directives are ignored: the final playlist at once.
	res, m := fetchPlaylist(t, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=3", url, msn+2))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, m.Endlist)
}

func TestHoldForMissingPartEndsIn503(t *testing.T) {
	t.Parallel()
	srv, base := startTestOrigin(t, "low")
	stop := make(chan struct{})
	sess := pacedSession(t, srv, "stalled", stop)
	url := base + "/live/stalled/audio.m3u8"
	waitLive(t, url)

	// The publisher stalls (still connected): the next part never comes.
	close(stop)
	time.Sleep(300 * time.Millisecond)
	_, m := fetchPlaylist(t, url)
	msn, part := nextPart(m)

	start := time.Now()
	res, err := http.Get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", url, msn, part))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(start)

	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, string(body))
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	// low preset: target duration 1 s, so the hold is capped at 3 s.
	require.GreaterOrEqual(t, took, 2900*time.Millisecond)
	require.Less(t, took, 8*time.Second)
	require.False(t, strings.Contains(string(body), "#EXTM3U"), "a timed-out hold must not return the playlist")
	sess.End()
}
