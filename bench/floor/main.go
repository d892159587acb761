//go:build linux

// Command floor measures the least CPU that a delivered LL-HLS part can
// cost on this machine's loopback, with nothing of HTTP, HLS or Go's
// runtime in the way, so that amphi's figures have a floor to be read
// against.
//
// Per part, each listener makes the two exchanges an LL-HLS player makes: a
// blocking playlist request that the server holds until the part is cut (on
// a shared grid of ticks, one per part duration), then the part request,
// answered at once. Both sides are one thread each with their own epoll
// loop, raw system calls and pre-built messages of the sizes amphi sends,
// so all that is left is the kernel's cost per message and the wake-ups.
//
//	floor -serve 127.0.0.1:18990 &
//	floor -connect 127.0.0.1:18990 -conns 5000 -duration 15s
//
// With -goroutines the server runs a goroutine per connection over Go's
// poller instead, as amphi's h1 server does, to show what that model costs
// apart from HTTP and LL-HLS. bench/floor.sh pins the two sides as
// bench/loadtest.sh pins a server and the generator, runs both servers,
// and prints the reports.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/rawsock"
)

func main() {
	serveAddr := flag.String("serve", "", "listen on this address and answer until interrupted")
	goroutines := flag.Bool("goroutines", false, "serve with a goroutine per connection over Go's poller, as amphi's h1 does, instead of one epoll loop")
	coro := flag.Bool("coro", false, "serve with the goroutine server's code per connection, run as coroutines of an epoll loop")
	connect := flag.String("connect", "", "the server's address, for the listeners")
	hlsPath := flag.String("hls", "", "with -connect: follow this LL-HLS media playlist of an amphi origin or edge (e.g. /live/demo/audio.m3u8) instead of a floor server")
	conns := flag.Int("conns", 2000, "listeners (one connection each)")
	duration := flag.Duration("duration", 15*time.Second, "how long the listeners listen")
	ramp := flag.Duration("ramp", 5*time.Second, "latency is only recorded after this much of the run")
	period := flag.Duration("period", 213*time.Millisecond, "the part duration: one tick per part")
	plSize := flag.Int("playlist", 1500, "playlist answer body bytes")
	partSize := flag.Int("part", 620, "part answer body bytes")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	var err error
	switch {
	case *serveAddr != "":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		stop := make(chan struct{})
		go func() { <-sig; close(stop) }()
		var r serverReport
		if *goroutines || *coro {
			runtime.UnlockOSThread()
			var ln net.Listener
			if ln, err = net.Listen("tcp", *serveAddr); err != nil {
				break
			}
			if *coro {
				r, err = serveCoro(ln, *period, *plSize, *partSize, stop)
			} else {
				r, err = serveGoroutines(ln, *period, *plSize, *partSize, stop)
			}
		} else {
			var lfd int
			if lfd, _, err = listen(*serveAddr); err != nil {
				break
			}
			r, err = serve(lfd, *period, *plSize, *partSize, stop)
		}
		if err == nil {
			fmt.Println(r)
		}
	case *connect != "":
		var r clientReport
		if *hlsPath != "" {
			r, err = runHLSClient(*connect, *hlsPath, *conns, *duration, *ramp, *period)
		} else {
			r, err = runClient(*connect, *conns, *duration, *ramp, *period)
		}
		if err == nil {
			fmt.Println(r)
		}
	default:
		err = errors.New("give -serve ADDR or -connect ADDR")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// answer is a pre-built HTTP/1.1 response with a body of n bytes.
func answer(contentType string, n int) []byte {
	head := "HTTP/1.1 200 OK\r\nContent-Type: " + contentType +
		"\r\nCache-Control: public, max-age=60\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: " +
		strconv.Itoa(n) + "\r\n\r\n"
	return append([]byte(head), bytes.Repeat([]byte{'#'}, n)...)
}

// nextTick is the first tick of the grid (multiples of period since the
// Unix epoch, shared by both processes) after t.
func nextTick(t time.Time, period time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, (ns/int64(period)+1)*int64(period))
}

func cpuSeconds() float64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func sockaddr(addr string) (*unix.SockaddrInet4, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("%q: want IPv4 ip:port", addr)
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
}

// epollWait is epoll_wait(2) that looks without the scheduler's system-call
// bookkeeping first, as Go's poller does before it sleeps, and only blocks
// through the scheduler when nothing is ready. Reads and writes use
// rawsock's raw calls for the same reason (see there): the floor pays the
// kernel, not the runtime.
func epollWait(ep int, events []unix.EpollEvent, ms int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 && e != unix.EINTR {
		return 0, e
	}
	if int(n) > 0 || ms == 0 {
		return int(n), nil
	}
	return unix.EpollWait(ep, events, ms)
}

// waitMillis is epoll_wait's timeout for a deadline: at least 0, rounded up.
func waitMillis(until time.Time) int {
	d := time.Until(until)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

type sconn struct {
	buf  []byte
	n    int
	held int64 // the tick its held request waits for; 0 when none
}

// listen opens a non-blocking listening socket on addr (port 0: any) and
// returns it with the address it got.
func listen(addr string) (int, string, error) {
	sa, err := sockaddr(addr)
	if err != nil {
		return -1, "", err
	}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	_ = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(lfd, sa); err != nil {
		unix.Close(lfd)
		return -1, "", err
	}
	if err := unix.Listen(lfd, 65535); err != nil {
		unix.Close(lfd)
		return -1, "", err
	}
	got, err := unix.Getsockname(lfd)
	in4, ok := got.(*unix.SockaddrInet4)
	if err != nil || !ok {
		unix.Close(lfd)
		return -1, "", fmt.Errorf("getsockname: %v", err)
	}
	return lfd, netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)).String(), nil
}

type serverReport struct {
	accepted, answers, short int
	cpu                      float64 // seconds
	wall                     time.Duration
}

func (r serverReport) String() string {
	parts := max(r.answers/2, 1)
	return fmt.Sprintf("server: accepted %d, answers %d (parts %d), short sends %d, CPU %.2f s in %.1f s, %.1f µs per part",
		r.accepted, r.answers, r.answers/2, r.short, r.cpu, r.wall.Seconds(), r.cpu*1e6/float64(parts))
}

// serve answers on the listening socket lfd until stop is closed, then
// closes every connection and lfd.
func serve(lfd int, period time.Duration, plSize, partSize int, stop <-chan struct{}) (serverReport, error) {
	var r serverReport
	defer unix.Close(lfd)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return r, err
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return r, err
	}

	playlist := answer("application/vnd.apple.mpegurl", plSize)
	part := answer("audio/mp4", partSize)
	conns := map[int]*sconn{}
	defer func() {
		for fd := range conns {
			unix.Close(fd)
		}
	}()
	var held []int
	events := make([]unix.EpollEvent, 1024)
	cpu0, start := cpuSeconds(), time.Now()
	tick := nextTick(time.Now(), period)
	cur := tick.UnixNano()/int64(period) - 1 // the last tick passed
	send := func(fd int, msg []byte) {
		if n, err := rawsock.Send(fd, msg); err != nil || n != len(msg) {
			r.short++ // a floor has no send queue: count it and go on
		}
		r.answers++
	}
	for {
		select {
		case <-stop:
			r.cpu, r.wall = cpuSeconds()-cpu0, time.Since(start)
			return r, nil
		default:
		}
		n, err := epollWait(ep, events, min(waitMillis(tick), 100))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return r, err
		}
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == lfd {
				for {
					cfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					_ = unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					conns[cfd] = &sconn{buf: make([]byte, 4096)}
					r.accepted++
					_ = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, cfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(cfd)})
				}
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			m, err := rawsock.Recv(fd, c.buf[c.n:])
			if m <= 0 {
				if err == unix.EAGAIN {
					continue
				}
				_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
				unix.Close(fd)
				delete(conns, fd)
				continue
			}
			c.n += m
			for {
				end := bytes.Index(c.buf[:c.n], []byte("\r\n\r\n"))
				if end < 0 {
					break
				}
				if k, ok := heldTick(c.buf[:end]); ok {
					if k <= cur {
						send(fd, playlist) // that part is out already
					} else {
						c.held = k
						held = append(held, fd)
					}
				} else {
					send(fd, part)
				}
				c.n = copy(c.buf, c.buf[end+4:c.n])
			}
			if c.n == len(c.buf) {
				c.n = 0 // a floor does not parse long requests
			}
		}
		if now := time.Now(); !now.Before(tick) {
			cur = now.UnixNano() / int64(period)
			kept := held[:0]
			for _, fd := range held {
				switch c := conns[fd]; {
				case c == nil || c.held == 0:
				case c.held <= cur:
					c.held = 0
					rawsock.DelayAcks(fd) // as h1 does after a hold
					send(fd, playlist)
				default:
					kept = append(kept, fd)
				}
			}
			held = kept
			tick = nextTick(now, period)
		}
	}
}

// heldTick reads the tick a held request names: "GET /h<tick> ...".
func heldTick(req []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(req, []byte("GET /h"))
	if !ok {
		return 0, false
	}
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	k, err := strconv.ParseInt(string(rest), 10, 64)
	return k, err == nil && k > 0
}

type cconn struct {
	fd   int
	tick int64 // the part (tick) it is after
	part bool  // waiting for the part (not the playlist)
	req  []byte
	got  []gotPart
}

var partReq = []byte("GET /p HTTP/1.1\r\nHost: floor\r\n\r\n")

// askHeld sends the blocking playlist request for tick k.
func (c *cconn) askHeld(k int64) error {
	c.tick = k
	c.req = strconv.AppendInt(append(c.req[:0], "GET /h"...), k, 10)
	c.req = append(c.req, " HTTP/1.1\r\nHost: floor\r\n\r\n"...)
	_, err := rawsock.Send(c.fd, c.req)
	return err
}

// complete reports how many bytes of buf one whole response takes, or 0.
func complete(buf []byte) int {
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return 0
	}
	head := buf[:end]
	i := bytes.Index(head, []byte("Content-Length: "))
	if i < 0 {
		return 0
	}
	rest := head[i+len("Content-Length: "):]
	if j := bytes.IndexByte(rest, '\r'); j >= 0 {
		rest = rest[:j]
	}
	cl, err := strconv.Atoi(string(rest))
	if err != nil || cl < 0 || cl > len(buf)-end-4 {
		return 0
	}
	return end + 4 + cl
}

type clientReport struct {
	hls                          bool // -hls: no tick to measure from
	listeners, parts, late, errs int
	p50, p99, max                time.Duration // after the ramp, from the tick (not with -hls)
	spread50, spread99           time.Duration // after the ramp, from the first listener's copy
	cpu                          float64       // seconds
	wall                         time.Duration
}

func (r clientReport) String() string {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	fromTick := ""
	if !r.hls {
		fromTick = fmt.Sprintf(" from the tick p50 %.1f ms p99 %.1f ms max %.1f ms,", ms(r.p50), ms(r.p99), ms(r.max))
	}
	return fmt.Sprintf("client: %d listeners, parts %d, after the ramp%s spread p50 %.1f ms p99 %.1f ms, %d more than a part late, errors %d, CPU %.2f s in %.1f s, %.1f µs per part",
		r.listeners, r.parts, fromTick, ms(r.spread50), ms(r.spread99), r.late, r.errs, r.cpu, r.wall.Seconds(), r.cpu*1e6/float64(max(r.parts, 1)))
}

// spreadStats sets the spread figures: for each part a listener got after
// warm, how long after the first listener to get that part. With -hls,
// parts more than a period after the first copy count as late.
func (r *clientReport) spreadStats(got [][]gotPart, warm time.Time, period time.Duration, countLate bool) {
	first := map[int64]time.Time{}
	for _, g := range got {
		for _, p := range g {
			if t, ok := first[p.key]; !ok || p.at.Before(t) {
				first[p.key] = p.at
			}
		}
	}
	var d []time.Duration
	for _, g := range got {
		for _, p := range g {
			if p.at.After(warm) {
				s := p.at.Sub(first[p.key])
				d = append(d, s)
				if countLate && s > period {
					r.late++
				}
			}
		}
	}
	slices.Sort(d)
	r.spread50, r.spread99 = quantile(d, 0.5), quantile(d, 0.99)
}

// quantile of sorted d; 0 when d is empty.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(q*float64(len(d)-1))]
}

// runClient runs n listeners against the server at addr for duration.
func runClient(addr string, n int, duration, ramp, period time.Duration) (clientReport, error) {
	r := clientReport{listeners: n}
	l, err := dialListeners(addr, n, 16<<10)
	if err != nil {
		return r, err
	}
	defer l.close()
	cs := make([]cconn, n)
	for i := range cs {
		cs[i].fd = l.fds[i]
		if err := cs[i].askHeld(nextTick(time.Now(), period).UnixNano() / int64(period)); err != nil {
			return r, err
		}
	}
	warm := l.start.Add(ramp)
	var lat []time.Duration
	r.cpu, r.wall, err = l.run(l.start.Add(duration), &r.errs, func(i int, _ []byte) error {
		c := &cs[i]
		var err error
		if !c.part {
			c.part = true
			_, err = rawsock.Send(c.fd, partReq)
		} else {
			now := time.Now()
			r.parts++
			c.got = append(c.got, gotPart{c.tick, now})
			if now.After(warm) {
				d := now.Sub(time.Unix(0, c.tick*int64(period)))
				lat = append(lat, d)
				if d > period {
					r.late++
				}
			}
			c.part = false
			err = c.askHeld(c.tick + 1)
		}
		if err != nil {
			r.errs++
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	slices.Sort(lat)
	r.p50, r.p99, r.max = quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1)
	got := make([][]gotPart, n)
	for i := range cs {
		got[i] = cs[i].got
	}
	r.spreadStats(got, warm, period, false)
	return r, nil
}
