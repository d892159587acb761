package llhls

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/h1"
)

// countingWriter wraps a ResponseWriter, as the edge's metrics do, and
// counts the answers that took the fast path through it.
type countingWriter struct {
	http.ResponseWriter
	fast *atomic.Int32
}

func (w countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// A wrapper that only Unwraps: the fast path is found behind it.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type prerenderCounter struct {
	prerenderer
	fast *atomic.Int32
}

func (p prerenderCounter) WritePrerendered(code int, fields, body []byte) error {
	p.fast.Add(1)
	return p.prerenderer.WritePrerendered(code, fields, body)
}

// Answers sent with pre-rendered header blocks (over h1) carry the same
// status, header fields and body as the ones written field by field
// (through net/http's ResponseWriter), Date aside.
func TestPrerenderedMatchesFieldByField(t *testing.T) {
	for _, setAge := range []bool{false, true} {
		t.Run(map[bool]string{false: "origin", true: "cache"}[setAge], func(t *testing.T) {
			now := time.Now().Add(2500 * time.Millisecond)
			h, st := newLiveHandler(t, func(c *Config) {
				c.SetAge = setAge
				c.Now = func() time.Time { return now }
			})
			st.setMultivariant(&Object{Data: []byte(testMultivariant), ContentType: "application/vnd.apple.mpegurl",
				Created: now.Add(-7 * time.Second)})
			st.setMedia("part103.0.m4s", &Object{Data: testObjectData("part103.0.m4s"), ContentType: testMediaType,
				Created: now.Add(-1500 * time.Millisecond)})

			var fast atomic.Int32
			srv := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// As the edge does: a wrapper (which must be passed by), and
				// here a counter of the fast path behind another.
				inner := asPrerenderer(w)
				require.NotNil(t, inner, "h1's writer has the fast path")
				h.ServeHTTP(unwrapOnly{countingWriter{prerenderCounter{inner, &fast}.wrap(w), &fast}}, r)
			})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			base := "http://" + ln.Addr().String()
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

			for _, tc := range []struct {
				method, target string
				hdr            []string
				fast           bool
			}{
				{"GET", playlistPath, nil, true},
				{"HEAD", playlistPath, nil, true},
				{"GET", playlistPath + "?_HLS_msn=103&_HLS_part=1", nil, true},
				{"GET", playlistPath + "?_HLS_msn=103&_HLS_part=1&_HLS_skip=YES", nil, true},
				{"GET", playlistPath, []string{"Accept-Encoding", "gzip"}, true},
				{"GET", playlistPath + "?_HLS_msn=103&_HLS_part=1", []string{"Accept-Encoding", "gzip"}, true},
				{"GET", multivariantURL, nil, true},
				{"GET", multivariantURL, []string{"Accept-Encoding", "gzip"}, true},
				{"GET", "/live/radio/seg102.m4s", nil, true},
				{"HEAD", "/live/radio/seg102.m4s", nil, true},
				{"GET", "/live/radio/part103.0.m4s", nil, true},
				{"GET", "/live/radio/seg102.m4s", []string{"Range", "bytes=0-9"}, false},
				{"GET", playlistPath + "?_HLS_part=1", nil, false},
				{"GET", "/live/radio/nope.m4s", nil, false},
				{"OPTIONS", playlistPath, nil, false},
			} {
				name := tc.method + " " + tc.target + " " + strings.Join(tc.hdr, " ")
				want := serve(h, tc.method, tc.target, tc.hdr...)
				req, err := http.NewRequest(tc.method, base+tc.target, nil)
				require.NoError(t, err)
				for i := 0; i+1 < len(tc.hdr); i += 2 {
					req.Header.Set(tc.hdr[i], tc.hdr[i+1])
				}
				before := fast.Load()
				got, err := client.Do(req)
				require.NoError(t, err, name)
				gotBody, err := io.ReadAll(got.Body)
				got.Body.Close()
				require.NoError(t, err)
				require.Equal(t, tc.fast, fast.Load() > before, "%s: fast path", name)
				require.Equal(t, want.StatusCode, got.StatusCode, name)
				require.Equal(t, body(t, want), string(gotBody), name)
				got.Header.Del("Date")
				if want.Header.Get("Content-Length") == "" {
					// net/http's recorder leaves Content-Length to the server.
					got.Header.Del("Content-Length")
				}
				require.Equal(t, want.Header, got.Header, name)
				if setAge && tc.fast && !strings.Contains(tc.target, "seg102") { // the fake's segments have no creation time
					require.NotEmpty(t, got.Header.Get("Age"), name)
				}
			}
		})
	}
}

// wrap puts the counter in front of w's fast path.
func (p prerenderCounter) wrap(w http.ResponseWriter) http.ResponseWriter {
	return struct {
		http.ResponseWriter
		prerenderer
	}{w, p}
}

// The header block of an answer is rendered once and shared, and again
// when its Age changes.
func TestFieldCache(t *testing.T) {
	var fc fieldCache
	spec := fieldSpec{contentType: "audio/mp4", cc: cacheImmutable[0], age: 3, ranges: true}
	a := fc.get(spec)
	require.Equal(t, "Access-Control-Allow-Origin: *\r\n"+
		"Access-Control-Expose-Headers: Age, Content-Length, Content-Range, Date\r\n"+
		"Content-Type: audio/mp4\r\nCache-Control: public, max-age=31536000, immutable\r\n"+
		"Accept-Ranges: bytes\r\nAge: 3\r\n", string(a))
	b := fc.get(spec)
	require.Same(t, &a[0], &b[0])
	spec.age = 4
	c := fc.get(spec)
	require.Contains(t, string(c), "Age: 4\r\n")
	spec = fieldSpec{contentType: "application/vnd.apple.mpegurl", cc: "public, max-age=1", age: -1, gzip: true, playlist: true}
	require.Equal(t, "Access-Control-Allow-Origin: *\r\n"+
		"Access-Control-Expose-Headers: Age, Content-Length, Content-Range, Date\r\n"+
		"Content-Type: application/vnd.apple.mpegurl\r\nCache-Control: public, max-age=1\r\n"+
		"Vary: Accept-Encoding\r\nContent-Encoding: gzip\r\n", string(fc.get(spec)))
}
