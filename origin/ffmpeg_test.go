package origin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run the origin end to end with real ffmpeg processes: one
// publishes MPEG-TS over HTTP, another plays the LL-HLS output back.

var (
	ffAACArgs  = []string{"-c:a", "aac", "-b:a", "64k"}
	ffOpusArgs = []string{"-c:a", "libopus", "-b:a", "64k"}
)

// ffNeed skips t when ffmpeg or ffprobe is not installed (CI installs both).
func ffNeed(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: %v", bin, err)
		}
	}
}

// ffSineInput is a 440 Hz mono sine at 48 kHz lasting seconds.
func ffSineInput(seconds int) []string {
	return []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(seconds)}
}

// ffPublishArgs publishes seconds of sine in real time to /ingest/name.
func ffPublishArgs(base, name string, seconds int, codec []string) []string {
	args := []string{"-v", "error", "-re"}
	args = append(args, ffSineInput(seconds)...)
	args = append(args, codec...)
	return append(args, "-f", "mpegts", "-method", "PUT", base+"/ingest/"+name)
}

// ffProc is a running ffmpeg process.
type ffProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer // read only after done
	done   chan struct{}
	err    error
	exited time.Time
}

// ffStart starts ffmpeg with args, killed after limit or when the test ends.
func ffStart(t *testing.T, limit time.Duration, args ...string) *ffProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	p := &ffProc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostdin"}, args...)...)
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		require.NoError(t, err, "starting ffmpeg")
	}
	go func() {
		p.err = p.cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("ffmpeg %v did not exit", args)
		}
	})
	return p
}

// wait waits for the process to exit by itself.
func (p *ffProc) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		require.FailNow(t, "ffmpeg did not exit", "within %v", limit)
	}
}

// ffRun runs a tool (ffmpeg or ffprobe) to completion within limit.
func ffRun(t *testing.T, limit time.Duration, tool string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append([]string{"-hide_banner"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %v: %w", tool, limit, err)
	}
	return out.String(), errOut.String(), err
}

// ffGet fetches url within limit and returns the status and body.
func ffGet(t *testing.T, url string, limit time.Duration) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "GET %s", url)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err, "GET %s", url)
	return res.StatusCode, body
}

// ffWaitLive polls the multivariant playlist of name until it answers 200
// (at most 15 s) and returns it. It fails early when pub exits first.
func ffWaitLive(t *testing.T, base, name string, pub *ffProc) string {
	t.Helper()
	url := base + "/live/" + name + "/index.m3u8"
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-pub.done:
			require.FailNow(t, "publisher exited before the stream went live", "%s: %v\n%s", name, pub.err, pub.stderr.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(res.Body)
			res.Body.Close()
			if rerr == nil && res.StatusCode == http.StatusOK {
				cancel()
				return string(body)
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	require.FailNow(t, "stream did not go live", "%s did not answer 200 within 15s", url)
	return ""
}

// ffMedia is what the tests read from a media playlist.
type ffMedia struct {
	targetDuration int
	mediaSequence  uint64
	mapURI         string
	segments       []string // segment URIs, oldest first
	parts          int      // complete parts of the segment in progress
	preloadHint    string
	ended          bool
}

// ffParseMedia reads a media playlist.
func ffParseMedia(t *testing.T, body []byte) ffMedia {
	t.Helper()
	var m ffMedia
	sc := bufio.NewScanner(bytes.NewReader(body))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			require.Equal(t, "#EXTM3U", line, "playlist:\n%s", body)
			first = false
			continue
		}
		var err error
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			m.targetDuration, err = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"))
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			m.mediaSequence, err = strconv.ParseUint(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			m.mapURI = ffAttr(line, "URI")
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			m.parts++
		case strings.HasPrefix(line, "#EXT-X-PRELOAD-HINT:"):
			m.preloadHint = ffAttr(line, "URI")
		case line == "#EXT-X-ENDLIST":
			m.ended = true
		case strings.HasPrefix(line, "#"):
		default:
			m.segments = append(m.segments, line)
			m.parts = 0 // the parts listed so far belong to this segment
		}
		require.NoError(t, err, "line %q", line)
	}
	require.NoError(t, sc.Err())
	return m
}

// nextMSN is the media sequence number of the segment in progress.
func (m ffMedia) nextMSN() uint64 { return m.mediaSequence + uint64(len(m.segments)) }

// lastMSN is the segment of the newest complete part (LLHLS.md §2).
func (m ffMedia) lastMSN() uint64 {
	if m.parts > 0 || len(m.segments) == 0 {
		return m.nextMSN()
	}
	return m.nextMSN() - 1
}

// ffAttr returns the quoted attribute key of a tag line.
func ffAttr(line, key string) string {
	_, rest, ok := strings.Cut(line, key+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// ffTagLine returns the first line of a playlist that starts with tag; it
// fails the test when there is none.
func ffTagLine(t *testing.T, body []byte, tag string) string {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, tag) {
			return line
		}
	}
	require.FailNow(t, "tag missing", "no %s in:\n%s", tag, body)
	return ""
}

// ffProgressTime returns the last out_time of ffmpeg's -progress output.
func ffProgressTime(t *testing.T, progress string) time.Duration {
	t.Helper()
	var last time.Duration
	found := false
	for _, line := range strings.Split(progress, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "out_time_us=")
		if !ok || v == "N/A" {
			continue
		}
		us, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err, "progress line %q", line)
		last, found = time.Duration(us)*time.Microsecond, true
	}
	require.True(t, found, "no out_time_us in ffmpeg progress:\n%s", progress)
	return last
}

func TestFFmpegPublishAndPlay(t *testing.T) {
	ffNeed(t)
	t.Parallel()
	cases := []struct {
		name   string
		preset string
		codec  []string
		codecs string
	}{
		{"aac-low", "low", ffAACArgs, "mp4a.40.2"},
		{"opus-low", "low", ffOpusArgs, "opus"},
		{"aac-balanced", "balanced", ffAACArgs, "mp4a.40.2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, base := startTestOrigin(t, tc.preset)
			pub := ffStart(t, 40*time.Second, ffPublishArgs(base, tc.name, 25, tc.codec)...)

			index := ffWaitLive(t, base, tc.name, pub)
			require.Contains(t, index, `CODECS="`+tc.codecs+`"`, "multivariant playlist:\n%s", index)

			start := time.Now()
			out, errOut, err := ffRun(t, 30*time.Second, "ffmpeg", "-nostdin", "-v", "error",
				"-i", base+"/live/"+tc.name+"/index.m3u8", "-t", "10",
				"-progress", "pipe:1", "-nostats", "-f", "null", "-")
			require.NoError(t, err, "player stderr:\n%s", errOut)
			require.Empty(t, errOut, "the player reported errors")
			decoded := ffProgressTime(t, out)
			require.GreaterOrEqual(t, decoded, 9500*time.Millisecond, "decoded media")
			t.Logf("%s: player decoded %v of media in %v", tc.name, decoded, time.Since(start).Round(time.Millisecond))

			select {
			case <-pub.done:
				require.FailNow(t, "publisher stopped early", "%v\n%s", pub.err, pub.stderr.String())
			default:
			}
		})
	}
}

func TestFFmpegEndOfStream(t *testing.T) {
	ffNeed(t)
	t.Parallel()
	// scale: 4 s segments; the playlist is served from its second segment (8 s),
	// and a hold for two segments ahead cannot be satisfied before the 11 s
	// publisher ends, while its 12 s limit is far away.
	_, base := startTestOrigin(t, "scale")
	const name = "eos"
	media := base + "/live/" + name + "/audio.m3u8"
	pub := ffStart(t, 30*time.Second, ffPublishArgs(base, name, 11, ffAACArgs)...)
	ffWaitLive(t, base, name, pub)

	code, body := ffGet(t, media, 5*time.Second)
	require.Equal(t, http.StatusOK, code)
	live0 := body
	live := ffParseMedia(t, body)
	require.False(t, live.ended, "ended before the publisher did:\n%s", body)
	require.NotEmpty(t, live.preloadHint, "a live playlist has a preload hint:\n%s", body)
	td := time.Duration(live.targetDuration) * time.Second
	require.Equal(t, 4*time.Second, td)

	type answer struct {
		code int
		body []byte
		at   time.Time
		err  error
	}
	held := make(chan answer, 1)
	heldAt := time.Now()
	go func() {
		url := fmt.Sprintf("%s?_HLS_msn=%d", media, live.lastMSN()+2)
		ctx, cancel := context.WithTimeout(context.Background(), 4*td)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		held <- answer{code: res.StatusCode, body: b, at: time.Now(), err: err}
	}()

	pub.wait(t, 20*time.Second)
	require.NoError(t, pub.err, "publisher stderr:\n%s", pub.stderr.String())

	var a answer
	select {
	case a = <-held:
	case <-time.After(3 * td):
		require.FailNow(t, "held request not released within 3 × target duration of the publisher's exit")
	}
	require.NoError(t, a.err)
	require.Equal(t, http.StatusOK, a.code, "%s", a.body)
	require.Contains(t, string(a.body), "#EXT-X-ENDLIST")
	require.NotContains(t, string(a.body), "#EXT-X-PRELOAD-HINT")
	holdTime, afterExit := a.at.Sub(heldAt), a.at.Sub(pub.exited)
	t.Logf("held request released after %v, %v after the publisher exited", holdTime.Round(time.Millisecond), afterExit.Round(time.Millisecond))
	require.Less(t, holdTime, 3*td/2, "the hold was released late")
	require.Less(t, afterExit, 2*time.Second, "the hold was not released when the stream ended")

	code, body = ffGet(t, media, 5*time.Second)
	require.Equal(t, http.StatusOK, code)
	final := ffParseMedia(t, body)
	require.True(t, final.ended, "final playlist:\n%s", body)
	require.Empty(t, final.preloadHint, "final playlist:\n%s", body)
	require.Equal(t, 0, final.parts, "no part may follow the last segment:\n%s", body)
	// PART-TARGET and PART-HOLD-BACK must not change, not even in the final
	// playlist (CoreMedia stops on any change: mediamtx #6237).
	require.Equal(t, ffTagLine(t, live0, "#EXT-X-SERVER-CONTROL:"), ffTagLine(t, body, "#EXT-X-SERVER-CONTROL:"))
	require.Equal(t, ffTagLine(t, live0, "#EXT-X-PART-INF:"), ffTagLine(t, body, "#EXT-X-PART-INF:"))

	// After the end, directives are ignored (§6.2.1): far-ahead requests get
	// the final playlist at once, never 400 or a hold.
	start := time.Now()
	code, far := ffGet(t, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=0", media, final.nextMSN()+50), 5*time.Second)
	require.Equal(t, http.StatusOK, code, "%s", far)
	require.Equal(t, string(body), string(far))
	require.Less(t, time.Since(start), time.Second)
}

// TestFFmpegContinuousOutput publishes a finished 8 s AAC stream and checks
// that init + segments form one fMP4 whose packets are exactly the published
// ones, with gapless timestamps.
func TestFFmpegContinuousOutput(t *testing.T) {
	const aacFrame = 1024 // samples
	ffNeed(t)
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ts")
	args := append([]string{"-nostdin", "-v", "error"}, ffSineInput(8)...)
	args = append(args, ffAACArgs...)
	args = append(args, "-f", "mpegts", in)
	_, errOut, err := ffRun(t, 20*time.Second, "ffmpeg", args...)
	require.NoError(t, err, "%s", errOut)

	_, base := startTestOrigin(t, "balanced")
	const name = "cont"
	f, err := os.Open(in)
	require.NoError(t, err)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A body of unknown length goes out chunked, as ffmpeg sends it.
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/ingest/"+name, io.MultiReader(f))
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode, "%s", msg)

	mediaURL := base + "/live/" + name + "/"
	code, body := ffGet(t, mediaURL+"audio.m3u8", 5*time.Second)
	require.Equal(t, http.StatusOK, code, "%s", body)
	pl := ffParseMedia(t, body)
	require.True(t, pl.ended, "%s", body)
	require.Zero(t, pl.mediaSequence, "every segment must still be listed:\n%s", body)
	require.NotEmpty(t, pl.mapURI)

	out := filepath.Join(dir, "out.mp4")
	var joined []byte
	for _, uri := range append([]string{pl.mapURI}, pl.segments...) {
		code, data := ffGet(t, mediaURL+uri, 5*time.Second)
		require.Equal(t, http.StatusOK, code, "%s: %s", uri, data)
		joined = append(joined, data...)
	}
	require.NoError(t, os.WriteFile(out, joined, 0o600))

	// Timestamps, in the track's 1/48000 time base: gapless, exactly.
	probe, errOut, err := ffRun(t, 20*time.Second, "ffprobe", "-v", "error", "-select_streams", "a:0",
		"-show_entries", "stream=time_base:packet=pts,duration", "-of", "compact=p=0", out)
	require.NoError(t, err, "%s", errOut)
	require.Empty(t, errOut)
	var pts, dur []int64
	timeBase := ""
	for _, line := range strings.Split(strings.TrimSpace(probe), "\n") {
		kv := ffKV(line)
		if tb, ok := kv["time_base"]; ok {
			timeBase = tb
			continue
		}
		p, err := strconv.ParseInt(kv["pts"], 10, 64)
		require.NoError(t, err, "line %q", line)
		d := int64(aacFrame)
		// ffprobe 5.1 leaves the first packet of any fragmented MP4 (its
		// own output too) without a duration.
		if v := kv["duration"]; v != "N/A" || len(pts) > 0 {
			d, err = strconv.ParseInt(v, 10, 64)
			require.NoError(t, err, "line %q", line)
		}
		pts, dur = append(pts, p), append(dur, d)
	}
	require.Equal(t, "1/48000", timeBase)
	require.NotEmpty(t, pts)
	require.Zero(t, pts[0], "the first packet starts at 0")
	for i := range pts {
		require.Equal(t, int64(aacFrame), dur[i], "duration of packet %d", i)
		if i > 0 {
			require.Equal(t, pts[i-1]+dur[i-1], pts[i], "packet %d does not follow packet %d", i, i-1)
		}
	}
	require.InDelta(t, 8*48000/aacFrame, len(pts), 2, "AAC frames in the output")

	// Payloads: the same frames, byte for byte, in the same order.
	inFrames := ffFrameHashes(t, in, "-bsf:a", "aac_adtstoasc")
	outFrames := ffFrameHashes(t, out)
	require.Len(t, outFrames, len(inFrames), "frames published vs. frames served")
	require.Equal(t, inFrames, outFrames)

	// And it decodes cleanly.
	_, errOut, err = ffRun(t, 20*time.Second, "ffmpeg", "-nostdin", "-v", "error", "-i", out, "-f", "null", "-")
	require.NoError(t, err, "%s", errOut)
	require.Empty(t, errOut)
	t.Logf("%d segments, %d AAC frames, gapless and identical to the input", len(pl.segments), len(pts))
}

// ffKV splits an ffprobe compact line "k=v|k=v".
func ffKV(line string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Split(line, "|") {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// ffFrameHashes returns "size hash" of every audio packet of file, copied
// without decoding (framemd5).
func ffFrameHashes(t *testing.T, file string, extra ...string) []string {
	t.Helper()
	args := []string{"-nostdin", "-v", "error", "-i", file, "-map", "0:a:0", "-c", "copy"}
	args = append(args, extra...)
	args = append(args, "-f", "framemd5", "-")
	out, errOut, err := ffRun(t, 20*time.Second, "ffmpeg", args...)
	require.NoError(t, err, "%s", errOut)
	var frames []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// stream, dts, pts, duration, size, hash[, side data]
		f := strings.Split(line, ",")
		require.GreaterOrEqual(t, len(f), 6, "framemd5 line %q", line)
		frames = append(frames, strings.TrimSpace(f[4])+" "+strings.TrimSpace(f[5]))
	}
	return frames
}
