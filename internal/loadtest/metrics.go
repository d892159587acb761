package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// reqKind is what a request fetched.
type reqKind int

const (
	kindMultivariant reqKind = iota // the URL given, when multivariant
	kindPlaylist                    // media playlist without directives
	kindBlocking                    // media playlist with _HLS_msn (a held request)
	kindPart                        // a listed EXT-X-PART
	kindHint                        // the EXT-X-PRELOAD-HINT part, requested before it exists
	kindSegment                     // a whole media segment
	kindInit                        // EXT-X-MAP
	nKinds
)

var kindNames = [nKinds]string{"multivariant", "playlist", "blocking_playlist", "part", "hinted_part", "segment", "init"}

// errKind classifies failures that are not an HTTP status.
type errKind int

const (
	errKindTimeout     errKind = iota // no complete answer within the request timeout
	errKindRefused                    // connection refused
	errKindReset                      // connection reset or broken pipe
	errKindClosed                     // the server closed the connection mid-request
	errKindNoPort                     // no local port/address left (EADDRNOTAVAIL)
	errKindFiles                      // out of file descriptors
	errKindBadResponse                // not HTTP/1.x, or a body larger than 8 MiB
	errKindMalformed                  // a playlist that does not parse
	errKindHold                       // a blocking request answered without the part it asked for
	errKindOtherHost                  // a playlist URI on another host
	errKindOther
	nErrKinds
)

var errKindNames = [nErrKinds]string{
	"timeout", "conn_refused", "conn_reset", "conn_closed", "no_local_port", "too_many_files",
	"bad_response", "malformed_playlist", "hold_unsatisfied", "other_host", "other",
}

// classify maps a request error to its kind.
func classify(err error) errKind {
	var netErr net.Error
	var malformed *malformedError
	var recErr tls.RecordHeaderError
	switch {
	case errors.As(err, &malformed):
		return errKindMalformed
	case errors.Is(err, errOtherHost):
		return errKindOtherHost
	case errors.Is(err, errHold):
		return errKindHold
	case errors.Is(err, errBadResponse), errors.Is(err, errTooLarge), errors.As(err, &recErr):
		return errKindBadResponse
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return errKindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return errKindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return errKindReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errKindClosed
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return errKindNoPort
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return errKindFiles
	}
	return errKindOther
}

// group holds the counters of one listener behaviour. Everything is atomic:
// listeners record as they go, the progress line and the report read.
type group struct {
	listeners atomic.Int64 // started listeners
	playing   atomic.Int64 // listeners whose audio has started
	ended     atomic.Int64 // listeners that saw EXT-X-ENDLIST
	resyncs   atomic.Int64 // listeners that fell out of the window and rejoined live

	latency *Histogram // part (ll, hint) or segment (legacy) delivery latency
	steady  *Histogram // the same, for media held once the ramp was over
	ttfa    *Histogram // join to first audio
	wait    *Histogram // blocking playlist request: sent to answered

	reqs   [nKinds]atomic.Int64
	bytes  atomic.Int64
	status [600]atomic.Int64 // non-2xx answers by status
	errs   [nErrKinds]atomic.Int64

	stalls     atomic.Int64
	stalledNs  atomic.Int64
	listenedNs atomic.Int64 // summed listener time, join to end
}

func newGroup() *group {
	return &group{latency: newHistogram(), steady: newHistogram(), ttfa: newHistogram(), wait: newHistogram()}
}

func (g *group) errorCount() int64 {
	var n int64
	for i := range g.status {
		n += g.status[i].Load()
	}
	for i := range g.errs {
		n += g.errs[i].Load()
	}
	return n
}

func (g *group) requestCount() int64 {
	var n int64
	for i := range g.reqs {
		n += g.reqs[i].Load()
	}
	return n
}
