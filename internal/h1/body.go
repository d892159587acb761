package h1

import (
	"bytes"
	"errors"
	"io"
	"strconv"
)

// body is a request body: Content-Length bytes or chunked, read from the
// connection's buffer and then the connection.
type body struct {
	c         *conn
	remain    int64 // bytes left of a Content-Length body; -1 for chunked
	chunkLeft int64 // data left in the current chunk
	afterData bool  // a chunk's data ended; its CRLF is next
	done      bool  // fully read: the connection is at the next request
	broken    bool  // a read failed: the connection cannot be reused
	expect100 bool  // send "100 Continue" before the first read
	total     int64
}

var errBodyTooLarge = errors.New("h1: request body too large")

func (b *body) reset(length int64, expect100 bool) {
	b.remain, b.chunkLeft, b.afterData, b.total = length, 0, false, 0
	b.done = length == 0
	b.broken = false
	b.expect100 = expect100
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.broken {
		return 0, io.ErrUnexpectedEOF
	}
	if b.expect100 {
		b.expect100 = false
		if _, err := b.c.write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
			b.broken = true
			return 0, err
		}
	}
	if b.remain < 0 {
		return b.readChunked(p)
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.done = true
		return n, io.EOF
	}
	if err != nil {
		b.broken = true
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	return n, err
}

func (b *body) readChunked(p []byte) (int, error) {
	if b.chunkLeft == 0 {
		if b.afterData {
			// CRLF ends the data of every chunk.
			if line, err := b.c.readLine(); err != nil || len(trimEOL(line)) != 0 {
				return b.fail(err)
			}
			b.afterData = false
		}
		line, err := b.c.readLine()
		if err != nil {
			return b.fail(err)
		}
		size, ok := parseChunkSize(trimEOL(line))
		if !ok {
			return b.fail(nil)
		}
		if size == 0 {
			// The last chunk; a trailer section ends with a blank line.
			for range 64 {
				line, err := b.c.readLine()
				if err != nil {
					return b.fail(err)
				}
				if len(trimEOL(line)) == 0 {
					b.done = true
					return 0, io.EOF
				}
			}
			return b.fail(nil)
		}
		b.total += size
		if b.total > b.c.srv.MaxBodyBytes {
			b.broken = true
			return 0, errBodyTooLarge
		}
		b.chunkLeft, b.afterData = size, true
	}
	if int64(len(p)) > b.chunkLeft {
		p = p[:b.chunkLeft]
	}
	n, err := b.c.Read(p)
	b.chunkLeft -= int64(n)
	if err != nil && b.chunkLeft > 0 {
		return n, b.failErr(err)
	}
	return n, nil
}

func (b *body) fail(err error) (int, error) { return 0, b.failErr(err) }

func (b *body) failErr(err error) error {
	b.broken = true
	if err == nil || err == io.EOF {
		err = errMalformedChunk
	}
	return err
}

var errMalformedChunk = errors.New("h1: malformed chunked request body")

// trimEOL strips the line ending, "\r\n" or "\n", from a line.
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// parseChunkSize parses a chunk-size line, extensions ignored.
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	n, err := strconv.ParseUint(string(bytes.TrimRight(line, " \t")), 16, 63)
	return int64(n), err == nil
}

// drain reads what the handler left of the body so the next request can be
// read, and reports whether the connection may carry another one.
func (b *body) drain() bool {
	if b.done {
		return true
	}
	if b.broken || b.expect100 {
		// A client waiting for 100 Continue that we never sent would send
		// its body late: close instead.
		return false
	}
	if b.remain < 0 || b.remain > maxDiscard {
		// Chunked (a live stream, perhaps) or large: close instead.
		return false
	}
	n, err := io.Copy(io.Discard, io.LimitReader(b, maxDiscard+1))
	return err == nil && n <= maxDiscard && b.done
}

// Close implements io.Closer; the rest of the body is dealt with after the
// handler returns.
func (b *body) Close() error { return nil }
