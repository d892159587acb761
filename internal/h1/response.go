package h1

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// bufferLimit is how much body an unknown-length response buffers
	// before it goes out chunked.
	bufferLimit = 32 << 10
	// copyLimit: a known-length body up to this size is copied behind its
	// head for one send(2); a larger one is sent uncopied after it.
	copyLimit = 64 << 10
)

// response implements http.ResponseWriter and http.Flusher, and the
// SetWriteDeadline and SetReadDeadline methods http.ResponseController uses.
type response struct {
	c   *conn
	req *http.Request
	hdr http.Header

	status      int  // 0 until WriteHeader
	committed   bool // the head is on the wire
	closeAfter  bool // close the connection after this response
	chunked     bool
	noBody      bool    // HEAD, 1xx, 204, 304
	declared    int64   // Content-Length the handler set, or -1
	written     int64   // body bytes accepted
	buf         *outBuf // body of unknown length, before commit
	deadlineSet bool
	failed      bool // a write failed: the connection is done
	// hdrUsed: Header was called. Until then hdr is empty and not read:
	// after a held request it is cold in cache, and WritePrerendered's
	// answers need none of it.
	hdrUsed bool
}

func (w *response) reset(req *http.Request, keep bool) {
	if w.hdrUsed {
		clear(w.hdr)
	}
	*w = response{c: w.c, req: req, hdr: w.hdr, closeAfter: !keep, declared: -1}
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header {
	w.hdrUsed = true
	return w.hdr
}

// WritePrerendered sends a whole answer at once: the status line for code,
// Date, fields, the fields set through Header() if any, Content-Length
// len(body), and body (not for HEAD). fields are header lines ("Name:
// value\r\n") that the handler rendered once for many answers; they are
// sent as they are, so they must be well-formed, and must not hold
// Content-Length, Transfer-Encoding or Connection. It is the fast path of
// a handler that gives many clients the same answer: nothing is parsed,
// looked up or copied per field. code must allow a body (200-599, not 204
// or 304), and nothing may have been written before.
func (w *response) WritePrerendered(code int, fields, body []byte) error {
	switch {
	case w.status != 0:
		return errors.New("h1: WritePrerendered after the status was written")
	case code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified:
		return fmt.Errorf("h1: WritePrerendered with status %d", code)
	}
	w.status = code
	w.noBody = w.req.Method == http.MethodHead
	w.declared = int64(len(body))
	w.written = w.declared
	o := getBuf()
	o.b = w.appendHead(o.b, w.declared, "", fields)
	if w.noBody {
		body = nil
	}
	return w.sendHead(o, body, true)
}

// WriteHeader implements http.ResponseWriter. 1xx codes are ignored.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	if !w.hdrUsed {
		return
	}
	if cl := w.hdr["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.declared = n
		}
	}
	if w.declared < 0 {
		delete(w.hdr, "Content-Length")
	}
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return 0, net.ErrClosed
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			w.written += int64(len(p))
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	switch {
	case w.committed && w.chunked:
		return w.writeChunk(p)
	case w.committed:
		return w.send(p)
	case w.declared >= 0:
		// The length is known: head and body leave together.
		o := getBuf()
		o.b = w.appendHead(o.b, w.declared, sniff(w.hdr, p), nil)
		return len(p), w.sendHead(o, p, w.written == w.declared)
	}
	if w.buf == nil {
		w.buf = getBuf()
	}
	w.buf.b = append(w.buf.b, p...)
	if len(w.buf.b) > bufferLimit {
		if err := w.startChunked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush implements http.Flusher: what is buffered goes out now, chunked.
func (w *response) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed && !w.noBody && w.declared < 0 {
		w.startChunked()
		return
	}
	if !w.committed {
		w.commitHead()
	}
	if !w.c.flushPending() {
		w.failed = true
	}
}

// SetWriteDeadline is what http.ResponseController calls.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.deadlineSet = true
	return w.c.setWriteDeadline(t)
}

// SetReadDeadline is what http.ResponseController calls.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.readDeadline = time.Time{} // the idle deadline must be set again
	return w.c.nc.SetReadDeadline(t)
}

// startChunked sends the head and the buffered body as the first chunk
// (or, for HTTP/1.0, as the start of a body that ends when the connection
// closes).
func (w *response) startChunked() error {
	var body []byte
	if w.buf != nil {
		body = w.buf.b
		defer putBuf(w.buf)
		w.buf = nil
	}
	if w.req.ProtoMinor == 0 {
		w.closeAfter = true
	} else {
		w.chunked = true
	}
	o := getBuf()
	defer putBuf(o)
	o.b = w.appendHead(o.b, -1, sniff(w.hdr, body), nil)
	var err error
	switch {
	case len(body) == 0:
		_, err = w.send(o.b)
	case w.chunked:
		o.b = appendChunkHeader(o.b, len(body))
		_, err = w.send(o.b, body, crlf)
	default:
		_, err = w.send(o.b, body)
	}
	return err
}

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

func (w *response) writeChunk(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hb [20]byte
	_, err := w.send(appendChunkHeader(hb[:0], len(p)), p, crlf)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func appendChunkHeader(b []byte, n int) []byte {
	b = strconv.AppendInt(b, int64(n), 16)
	return append(b, '\r', '\n')
}

func (w *response) commitHead() {
	length := w.declared
	if w.noBody && w.req.Method != http.MethodHead {
		length = -2
	}
	o := getBuf()
	o.b = w.appendHead(o.b, length, "", nil)
	w.send(o.b)
	putBuf(o)
}

// finish completes the response after the handler returned. It reports
// whether the connection can be reused.
func (w *response) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.failed:
	case !w.committed:
		var body []byte
		if w.buf != nil {
			body = w.buf.b
		}
		length := int64(len(body))
		switch {
		case w.declared >= 0:
			length = w.declared
		case w.noBody && w.req.Method != http.MethodHead:
			length = -2
		case w.req.Method == http.MethodHead && w.written == 0:
			length = -2
		case w.req.Method == http.MethodHead:
			length = w.written
		}
		o := getBuf()
		o.b = w.appendHead(o.b, length, sniff(w.hdr, body), nil)
		if length >= 0 && !w.noBody {
			o.b = append(o.b, body...)
		}
		w.sendLast(o)
	case w.chunked:
		w.send(lastChunk)
	}
	if w.buf != nil {
		putBuf(w.buf)
		w.buf = nil
	}
	if w.declared >= 0 && w.written < w.declared && !w.noBody {
		// The client waits for bytes that will never come.
		w.closeAfter = true
	}
	return !w.failed && !w.closeAfter
}

// sendHead sends the head in o and body after it, and puts o back: a body
// up to copyLimit is copied behind the head for one send(2), and held with
// it (sendLast) when it completes the response; a larger one is sent
// uncopied after the head.
func (w *response) sendHead(o *outBuf, body []byte, complete bool) error {
	if len(body) > copyLimit {
		_, err := w.send(o.b, body)
		putBuf(o)
		return err
	}
	o.b = append(o.b, body...)
	if complete {
		w.sendLast(o)
		return nil
	}
	_, err := w.send(o.b)
	putBuf(o)
	return err
}

// sendLast sends o, the whole of a response, and puts it back. Over a raw
// socket it is kept instead for the connection's next read to send
// (conn.readIdle), which saves that read a system call; a handler's Flush,
// the next write on the connection and its close send it before anything
// else. Like net/http, whose buffered writer holds a short answer until the
// handler returns, nothing leaves before the handler is done.
func (w *response) sendLast(o *outBuf) {
	if w.c.sock != nil && w.c.pending == nil {
		w.c.pending = o
		return
	}
	w.send(o.b)
	putBuf(o)
}

// send writes the given pieces in order: one send(2) for one piece.
func (w *response) send(pieces ...[]byte) (int, error) {
	if !w.deadlineSet {
		w.deadlineSet = true
		w.c.setWriteDeadline(time.Now().Add(w.c.srv.WriteTimeout))
	}
	var err error
	var n int
	switch {
	case len(pieces) == 1:
		n, err = w.c.write(pieces[0])
	case w.c.sock != nil:
		// Only bodies over copyLimit come here: a second send(2) is cheap
		// next to copying them.
		for _, p := range pieces {
			var m int
			m, err = w.c.write(p)
			n += m
			if err != nil {
				break
			}
		}
	default:
		bufs := net.Buffers(pieces)
		var m int64
		m, err = bufs.WriteTo(w.c.nc)
		n = int(m)
	}
	if err != nil {
		w.failed = true
	}
	return n, err
}

// appendHead appends the status line and headers. length is the
// Content-Length to send, -1 when the body is chunked or close-delimited,
// -2 when none must be sent. contentType is a sniffed type used when the
// handler set none. fields are pre-rendered header lines (WritePrerendered).
func (w *response) appendHead(b []byte, length int64, contentType string, fields []byte) []byte {
	w.committed = true
	if w.c.srv.closing.Load() || w.hdrUsed && hasToken(w.hdr["Connection"], "close") {
		w.closeAfter = true
	}
	b = append(b, statusLine(w.status)...)
	dated := false
	if w.hdrUsed {
		_, dated = w.hdr["Date"]
	}
	if !dated {
		b = append(b, "Date: "...)
		b = append(b, httpDate()...)
		b = append(b, '\r', '\n')
	}
	if contentType != "" {
		b = append(b, "Content-Type: "...)
		b = append(b, contentType...)
		b = append(b, '\r', '\n')
	}
	b = append(b, fields...)
	if !w.hdrUsed {
		return w.appendFraming(b, length)
	}
	for k, vs := range w.hdr {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive":
			continue
		}
		if !isToken(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ':', ' ')
			b = appendValue(b, v)
			b = append(b, '\r', '\n')
		}
	}
	return w.appendFraming(b, length)
}

// appendFraming appends Content-Length or Transfer-Encoding, Connection
// and the blank line that ends the head.
func (w *response) appendFraming(b []byte, length int64) []byte {
	switch {
	case length >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, '\r', '\n')
	case length == -1 && w.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	switch {
	case w.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case w.req.ProtoMinor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return append(b, '\r', '\n')
}

// appendValue appends v with CR and LF replaced, so a value can never
// split the response (net/http does the same).
func appendValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\r\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// sniff returns the Content-Type to add: none when the handler set one
// (even to nil, which asks for none) or there is no body.
func sniff(h http.Header, body []byte) string {
	if _, ok := h["Content-Type"]; ok || len(body) == 0 {
		return ""
	}
	return http.DetectContentType(body)
}

// statusLines holds the status line of every code net/http names.
var statusLines = func() (t [600]string) {
	for code := range t {
		if text := http.StatusText(code); text != "" {
			t[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return t
}()

func statusLine(code int) string {
	if code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

// httpDate is the Date header value, formatted once per second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &dateText{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateText]

// outBuf is a pooled output buffer: the pool holds pointers, so getting
// and putting one allocates nothing.
type outBuf struct{ b []byte }

var bufPool = sync.Pool{New: func() any { return &outBuf{b: make([]byte, 0, 2048)} }}

func getBuf() *outBuf { return bufPool.Get().(*outBuf) }

func putBuf(o *outBuf) {
	if cap(o.b) > 128<<10 {
		return
	}
	o.b = o.b[:0]
	bufPool.Put(o)
}
