//go:build linux

package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/evloop"
)

// The server's tests run on event loops by default; these run them again
// with a goroutine per connection.
func TestGoroutineModel(t *testing.T) {
	for name, fn := range map[string]func(*testing.T){
		"HeldAnswerKeepsAcksOnAnswers":             TestHeldAnswerKeepsAcksOnAnswers,
		"RequestArrivingDuringHandlerIsAnswered":   TestRequestArrivingDuringHandlerIsAnswered,
		"QuickClientTurningSlowKeepsItsConnection": TestQuickClientTurningSlowKeepsItsConnection,
		"BodyReadAfterSkippedRecvUsesIdleDeadline": TestBodyReadAfterSkippedRecvUsesIdleDeadline,
		"FlushSendsAHeldAnswer":                    TestFlushSendsAHeldAnswer,
		"HeldAnswerSentBeforeClose":                TestHeldAnswerSentBeforeClose,
		"ManyQuickExchanges":                       TestManyQuickExchanges,
		"WritePrerendered":                         TestWritePrerendered,
		"WritePrerenderedHTTP10":                   TestWritePrerenderedHTTP10,
		"PipelinedRequestsAnsweredInOrder":         TestPipelinedRequestsAnsweredInOrder,
		"ResponseFraming":                          TestResponseFraming,
		"MalformedRequests":                        TestMalformedRequests,
		"UnreadBodyDrainedOrClosed":                TestUnreadBodyDrainedOrClosed,
		"ExpectContinue":                           TestExpectContinue,
		"Timeouts":                                 TestTimeouts,
		"ShutdownClosesIdleAndLetsRequestsFinish":  TestShutdownClosesIdleAndLetsRequestsFinish,
		"MaxConns":                                 TestMaxConns,
		"HandlerPanicClosesConnection":             TestHandlerPanicClosesConnection,
		"ManyPipelinedRequests":                    TestManyPipelinedRequests,
		"RefusedUploadSeesItsAnswer":               TestRefusedUploadSeesItsAnswer,
		"RefusedStreamReachesGoClient":             TestRefusedStreamReachesGoClient,
	} {
		t.Run(name, fn)
	}
}

// loopHandler holds /hold/* on a channel through the loop (evloop.Await),
// blocks /block off the loop (evloop.Detach, then a plain receive), and
// answers anything else at once.
type loopHandler struct {
	held, block chan struct{}
	entered     chan string
}

func (h *loopHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/hold/"):
		if err := evloop.Await(r.Context(), h.held); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	case r.URL.Path == "/block":
		evloop.Detach(r.Context())
		h.entered <- r.URL.Path
		<-h.block
	case r.URL.Path == "/plain": // no Detach: OnLoop refuses it
		h.entered <- r.URL.Path
		<-h.block
	}
	io.WriteString(w, r.URL.Path)
}

func startLoopServer(t *testing.T) (*loopHandler, string, *Server) {
	h := &loopHandler{held: make(chan struct{}), block: make(chan struct{}), entered: make(chan string, 4)}
	s := &Server{Handler: h, EventLoops: 1, OnLoop: func(r *http.Request) bool { return r.URL.Path != "/plain" }}
	return h, start(t, s), s
}

// Held requests wait on the loop without holding it up: one loop serves a
// quick request while 200 are held, and while a detached request blocks;
// closing the channel answers every held request; a detached connection
// comes back to the loop for its next request.
func TestHeldRequestsOnTheLoop(t *testing.T) {
	h, addr, _ := startLoopServer(t)
	const n = 200
	held := make([]*idleConn, n)
	for i := range held {
		held[i] = dialIdle(t, addr)
		held[i].send(get("/hold/" + strings.Repeat("x", i%7)))
	}
	quick := dialIdle(t, addr)
	quick.send(get("/quick"))
	require.Equal(t, "/quick", quick.answer())

	blocked := dialIdle(t, addr)
	blocked.send(get("/block"))
	require.Equal(t, "/block", <-h.entered)
	quick.send(get("/quick2"))
	require.Equal(t, "/quick2", quick.answer(), "a detached handler held up the loop")

	close(h.held)
	for i, c := range held {
		require.Equal(t, "/hold/"+strings.Repeat("x", i%7), c.answer())
	}
	close(h.block)
	require.Equal(t, "/block", blocked.answer())
	blocked.send(get("/hold/again")) // on the loop again; the channel is closed
	require.Equal(t, "/hold/again", blocked.answer())
}

// Requests OnLoop refuses run detached: a handler that blocks without
// saying so does not hold up the loop.
func TestRefusedRequestsRunDetached(t *testing.T) {
	h, addr, _ := startLoopServer(t)
	plain := dialIdle(t, addr)
	plain.send(get("/plain"))
	require.Equal(t, "/plain", <-h.entered)
	quick := dialIdle(t, addr)
	quick.send(get("/quick"))
	require.Equal(t, "/quick", quick.answer())
	close(h.block)
	require.Equal(t, "/plain", plain.answer())
}

// Close ends the loops: a request held on one is answered 503 or cut off,
// and Serve returns, within a bound.
func TestCloseEndsHeldLoopRequests(t *testing.T) {
	_, addr, s := startLoopServer(t)
	c := dialIdle(t, addr)
	c.send(get("/hold/x"))
	time.Sleep(50 * time.Millisecond)
	began := time.Now()
	require.NoError(t, s.Close())
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err == nil {
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		resp.Body.Close()
	} else {
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the held request outlived Close")
	}
	require.Less(t, time.Since(began), 5*time.Second)
}

// Shutdown with a request held on the loop: the handler's own stop
// (here, the channel) answers it, and Shutdown then returns.
func TestShutdownWaitsForHeldLoopRequests(t *testing.T) {
	h, addr, s := startLoopServer(t)
	c := dialIdle(t, addr)
	c.send(get("/hold/y"))
	idle := dialIdle(t, addr)
	idle.send(get("/quick"))
	require.Equal(t, "/quick", idle.answer())
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	// The idle connection is closed; the held one is not, until answered.
	_, err := idle.br.ReadByte()
	require.Error(t, err)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request held", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.held)
	require.Equal(t, "/hold/y", c.answer())
	require.NoError(t, <-shut)
}
