package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.0 and HTTP/1.1 on plain connections. It does less per request than net/http's
// server, which matters on a proxy's hot path where the handler's own work is small:
//
//   - One goroutine per connection, and no background read per request: only a request still in its
//     handler after 5 to 10 ms gets a goroutine that watches the connection, so that a client going
//     away ends the request's context (a long poll, a slow node) without every fast request paying
//     for it. A request's context is its connection's: it ends when the client closes the connection.
//   - With a fast handler and a plain TCP connection, fast requests are read, served and answered
//     from inside one raw read of the connection (a session, see session.go): the wait for the next
//     request needs no read that can only answer "not yet".
//   - Header names common on the wire are canonicalized without allocating, and the request head is
//     parsed in one pass over the read buffer.
//   - Read deadlines are set only when they can fire: a request head that is already in the buffer
//     does not get a header timeout of its own.
//
// Parsing is strict where leniency lets a proxy and a backend disagree about where a request ends:
// obsolete line folding, white space before a header's colon, both Content-Length and
// Transfer-Encoding, differing Content-Length values and transfer codings other than chunked are
// refused with 400 (501 for unknown codings) and the connection is closed.
//
// The ResponseWriter supports http.Flusher, http.Hijacker and http.ResponseController's
// EnableFullDuplex and deadlines; a request body and its response may stream at the same time. A
// response whose length the handler does not set is sent chunked, unless the handler returned having
// written less than 4 KiB, which then gets a Content-Length. Response trailers are sent as net/http
// sends them (announced in Trailer, or set with http.TrailerPrefix) when the response is chunked;
// request trailers are read and dropped.
//
// TLS and HTTP/2 are not spoken here: use net/http's server for those.
type Server struct {
	// Handler answers every request.
	Handler http.Handler
	// ReadHeaderTimeout bounds the reading of a request head from its first byte, and the wait for
	// a new connection's first request (0: none).
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection (0:
	// ReadHeaderTimeout). After a request without a body the deadline is moved only once it is a
	// sixteenth of the timeout stale, so a client that sends requests back to back waits at least
	// 15/16 of it.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head, request line included (0: 1 MiB). Larger heads get 431.
	MaxHeaderBytes int
	// BaseContext is the parent of every connection's context (nil: context.Background()).
	BaseContext context.Context
	// Log receives handler panics and accept errors (nil: discarded).
	Log *slog.Logger
	// Fast, when set, is offered every request whose whole head is already in the read buffer
	// before it is parsed for Handler (see Exchange); what it declines goes to Handler.
	Fast FastHandler
	// SniffContentType gives a response without a Content-Type one detected from its first bytes, as
	// net/http's server does (a handler opts out by setting the field to nil). A proxy leaves it off.
	SniffContentType bool

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*serverConn]struct{}
	shutting atomic.Bool
}

// connection states, for Shutdown: an idle connection (waiting for a request) may be closed at once.
const (
	stateNew    int32 = iota // accepted, no request yet: closed by Shutdown only once newGrace passed
	stateIdle                // between requests
	stateActive              // reading a request or running its handler
	stateClosed
)

// newGrace is how long Shutdown lets a new connection send its first request (a client that has just
// connected may be writing it; net/http waits as long).
const newGrace = 5 * time.Second

const (
	watchDelay      = 5 * time.Millisecond // a request runs this long (up to twice) before its connection is watched
	bufSize         = 4 << 10              // read and write buffers per connection
	maxPending      = 4 << 10              // response bytes held back to send a Content-Length
	maxDrain        = 256 << 10            // unread request body discarded to keep a connection
	drainTimeout    = 5 * time.Second      // for the unread rest of a request body
	maxTrailerBytes = 16 << 10             // trailer section of a chunked request body
)

func (s *Server) maxHeader() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return 1 << 20
}

func (s *Server) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Serve accepts connections on ln and serves each on a goroutine of its own until Shutdown or Close;
// it then returns http.ErrServerClosed. Temporary accept errors (too many open files) are retried
// with a backoff.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.lns == nil {
		s.lns, s.conns = map[net.Listener]struct{}{}, map[*serverConn]struct{}{}
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	base := s.BaseContext
	if base == nil {
		base = context.Background()
	}
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("accept failed; retrying", "event", "http.accept_error", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := &serverConn{srv: s, nc: nc, created: time.Now()}
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			_ = nc.Close()
			return http.ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		// The connection's goroutine is the Server's: Shutdown waits for it, Close ends it.
		go c.serve(base)
	}
}

// Shutdown stops accepting, closes idle connections, lets the others finish the response they are
// writing, and returns when none is left or ctx ends (then with ctx's error; Close ends the rest).
// Hijacked connections are the handler's and are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopListening()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.state.CompareAndSwap(stateIdle, stateClosed) ||
				time.Since(c.created) > newGrace && c.state.CompareAndSwap(stateNew, stateClosed) {
				_ = c.nc.Close()
			}
		}
		left := len(s.conns)
		s.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close stops accepting and closes every connection at once (hijacked ones excepted).
//
// A connection is shut down before it is closed: closing waits for a raw read in progress, and a
// session's (session.go) lasts while its handler runs. Shut down, the connection fails the
// handler's writes and shows the handler's watch that the client is gone, which ends the request's
// context.
func (s *Server) Close() error {
	s.stopListening()
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		c.state.Store(stateClosed)
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.nc.(*net.TCPConn); ok {
			_ = tc.CloseRead()
			_ = tc.CloseWrite()
		}
		_ = c.nc.Close()
	}
	return nil
}

func (s *Server) stopListening() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutting.Store(true)
	for ln := range s.lns {
		_ = ln.Close()
	}
}

func (s *Server) forget(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serverConn is one client connection.
type serverConn struct {
	srv      *Server
	nc       net.Conn
	io       net.Conn // nc's reads and writes (see rawIO)
	br       *bufio.Reader
	bw       *bufio.Writer
	wmu      sync.Mutex // bw: the response and a 100 Continue sent from a body read
	state    atomic.Int32
	remote   string
	tmpl     *http.Request // carries the connection's context into every request
	hijacked bool
	created  time.Time
	deadline bool               // a read deadline is set
	idleSet  atomic.Int64       // when the idle deadline in force was set (monoClock ns); 0: another deadline is
	keys     []string           // scratch for sorting response header names
	cancel   context.CancelFunc // ends the connection's context (and its requests')

	// Watching the connection for the client going away while a handler runs (see Server).
	watch      *time.Timer
	watchMu    sync.Mutex
	inHandler  bool
	watchBody  *reqBody      // the request's body: watched only once read to its end
	watchDone  chan struct{} // closed when the watcher ends; nil when none runs
	reqSeq     uint64        // counts the requests given to handlers
	watchSeen  uint64        // the request the watch timer's current period started with
	checkedSeq uint64        // the last request before the timer last found the connection between requests
	armed      bool          // the watch timer is pending
	aborting   atomic.Bool   // the watcher is being stopped: its read error means nothing
	fastHeld   bool          // a fast request's head is still in br (not accepted): nothing may read br

	fx *Exchange // reused by the fast path's requests

	// The session (session.go): set when the connection has raw system calls and a fast handler.
	sys       *sysConn
	sessFn    func(uintptr) bool // c.sessionStep, allocated once
	sessOut   int                // how the session ended
	watchFD   int                // the descriptor a session holds for the handler being watched; -1: none
	watchStop chan struct{}      // closed to end a polling watcher (see pollGone)
	peerGone  atomic.Bool        // a peek found the client's close: a session's next wait ends at once
	detached  bool               // hijacked (watchMu): the connection is no longer the server's to check
}

// httpError is a request the server answers itself before closing the connection.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func (c *serverConn) serve(base context.Context) {
	ctx, cancel := context.WithCancel(base)
	c.cancel = cancel
	c.watch = time.AfterFunc(time.Hour, c.startWatch)
	c.watch.Stop()
	defer func() {
		c.stopWatch()
		c.watch.Stop()
		cancel()
		if !c.hijacked {
			_ = c.nc.Close()
			c.srv.forget(c)
		}
	}()
	c.io = rawIO(c.nc)
	c.br = bufio.NewReaderSize(c.io, bufSize)
	c.bw = bufio.NewWriterSize(c.io, bufSize)
	c.remote = c.nc.RemoteAddr().String()
	c.tmpl = (&http.Request{}).WithContext(ctx)
	s := c.srv
	c.setReadDeadline(s.ReadHeaderTimeout)
	if sc, ok := c.io.(*sysConn); ok && s.Fast != nil {
		c.sys = sc
		c.sessFn = c.sessionStep
	}
	for {
		if c.sys != nil && c.br.Buffered() == 0 {
			switch c.session() {
			case sessEnd:
				return
			case sessDeclined:
				goto full
			}
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) && !c.state.CompareAndSwap(stateNew, stateActive) {
			return // Shutdown closed it
		}
		if s.Fast != nil {
			if served, keep := c.serveFast(); served {
				if !keep {
					_ = c.bw.Flush()
					return
				}
				goto next
			}
		}
	full:
		if !c.serveRequest() {
			return
		}
	next:
		if !c.between() {
			return
		}
	}
}

// between ends a request: the response goes out and the connection waits for the next request,
// with the idle deadline; false means it closes instead (the write failed, or the server is
// shutting down).
func (c *serverConn) between() bool {
	s := c.srv
	if s.shutting.Load() {
		_ = c.bw.Flush()
		return false
	}
	if wait := s.IdleTimeout; wait > 0 {
		c.setIdleDeadline(wait)
	} else {
		c.setIdleDeadline(s.ReadHeaderTimeout)
	}
	if c.bw.Flush() != nil {
		return false
	}
	c.state.Store(stateIdle)
	return true
}

// serveRequest reads one request and runs Handler; false means the connection must close.
func (c *serverConn) serveRequest() bool {
	s := c.srv
	if s.ReadHeaderTimeout > 0 && !headBuffered(c.br) {
		c.setReadDeadline(s.ReadHeaderTimeout)
	}
	req, w, err := c.readRequest()
	if err != nil {
		c.reject(err)
		return false
	}
	if w.body != nil { // nothing else reads the connection during a request without a body
		c.setReadDeadline(0)
	}
	c.beginWatch(w.body, false)
	ok := c.run(w, req)
	c.stopWatch()
	return ok && !c.hijacked && w.finish()
}

// beginWatch marks a handler as running (body is its request body, held whether a fast request's
// head is still in the buffer). The watch timer is armed only when it is not pending already: a
// timer left from an earlier request fires early and re-arms itself once for a whole watchDelay
// (so a request is watched after 5 to 10 ms), which spares two timer updates per request on a busy
// connection, and a clock reading (requests are told apart by their sequence number).
func (c *serverConn) beginWatch(body *reqBody, held bool) {
	fd := -1
	if c.sys != nil && c.sys.direct {
		fd = int(c.sys.fd)
	}
	c.watchMu.Lock()
	c.inHandler, c.watchBody, c.fastHeld, c.watchFD = true, body, held, fd
	c.reqSeq++
	arm := !c.armed
	if arm {
		c.armed, c.watchSeen = true, c.reqSeq // the timer starts with this request
	}
	c.watchMu.Unlock()
	if arm {
		c.watch.Reset(watchDelay)
	}
}

// rearmLocked sets the watch timer to fire after d; watchMu is held.
func (c *serverConn) rearmLocked(d time.Duration) {
	c.armed = true
	c.watch.Reset(d)
}

// startWatch runs when the watch timer fires; once a handler has run for watchDelay, it starts a
// goroutine that watches the connection (reads it, or polls it in a session), so that the client
// closing it cancels the request's context.
func (c *serverConn) startWatch() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	c.armed = false
	if !c.inHandler && c.sys != nil && !c.detached {
		if c.checkedSeq != c.reqSeq { // requests came since the last look: look once they stop
			c.checkedSeq = c.reqSeq
			c.rearmLocked(watchDelay)
			return
		}
		c.checkGone()
		return
	}
	if !c.inHandler || c.watchDone != nil {
		return
	}
	if c.watchSeen != c.reqSeq { // armed for an earlier request: this one gets a whole delay from now
		c.watchSeen = c.reqSeq
		c.rearmLocked(watchDelay)
		return
	}
	if c.fastHeld { // the fast handler has not taken its request off the buffer yet
		c.rearmLocked(watchDelay)
		return
	}
	if b := c.watchBody; b != nil { // the handler may still read the body: look again later
		if !b.mu.TryLock() {
			c.rearmLocked(watchDelay)
			return
		}
		eof := b.eof
		b.mu.Unlock()
		if !eof {
			c.rearmLocked(watchDelay)
			return
		}
	}
	if c.watchFD >= 0 && c.br.Buffered() > 0 {
		return // the next request is in the buffer already: the client is there (as the reading watcher finds)
	}
	done := make(chan struct{})
	c.watchDone = done
	if fd := c.watchFD; fd >= 0 { // the handler runs inside a session's raw read: nothing else may read
		stop := make(chan struct{})
		c.watchStop = stop
		// Owned by the connection: stopWatch ends it and waits for it.
		go func() {
			defer close(done)
			pollGone(fd, stop, c.gone)
		}()
		return
	}
	// The idle deadline may still be set (nothing reads during a request without a body); the
	// watcher must not mistake it for the client leaving. Cleared here, under watchMu, so that
	// stopWatch's abort deadline always comes after.
	_ = c.nc.SetReadDeadline(time.Time{})
	c.idleSet.Store(0)
	// Owned by the connection: stopWatch ends it and waits for it.
	go func() {
		defer close(done)
		var ne net.Error
		if _, err := c.br.Peek(1); err != nil && !c.aborting.Load() && !(errors.As(err, &ne) && ne.Timeout()) {
			c.cancel() // the client closed the connection (or it broke): nobody waits for the answer
		} // a timeout is a deadline the handler set (ResponseController), not the client leaving
		// A byte that arrived is the next pipelined request: it stays in the buffer.
	}()
}

// stopWatch ends the handler's watch: the timer, and the watcher goroutine if one runs.
func (c *serverConn) stopWatch() {
	c.watchMu.Lock()
	c.inHandler, c.watchBody = false, nil
	done, stop := c.watchDone, c.watchStop
	c.watchDone, c.watchStop = nil, nil
	c.watchMu.Unlock()
	if done == nil {
		return
	}
	if stop != nil {
		close(stop)
		<-done
		return
	}
	c.aborting.Store(true)
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	<-done
	c.aborting.Store(false)
	_ = c.nc.SetReadDeadline(time.Time{})
	c.deadline = false
	c.idleSet.Store(0)
}

// setReadDeadline sets the read deadline d from now, or clears it (d == 0) if one is set.
func (c *serverConn) setReadDeadline(d time.Duration) {
	c.idleSet.Store(0)
	switch {
	case d > 0:
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
		c.deadline = true
	case c.deadline:
		_ = c.nc.SetReadDeadline(time.Time{})
		c.deadline = false
	}
}

// setIdleDeadline sets the wait for the next request to d from now, unless the deadline in force
// is such a wait set less than d/16 ago: moving a deadline costs a timer update, a measurable share
// of a small proxied request.
func (c *serverConn) setIdleDeadline(d time.Duration) {
	if d <= 0 {
		c.setReadDeadline(0)
		return
	}
	now := monoClock()
	if at := c.idleSet.Load(); at != 0 && now-at < int64(d/16) {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	c.deadline = true
	c.idleSet.Store(now)
}

// monoEpoch anchors monoClock.
var monoEpoch = time.Now()

// monoClock is monotonic nanoseconds since the process started, never 0: a step of the wall clock
// must not make a deadline look fresh.
func monoClock() int64 { return int64(time.Since(monoEpoch)) + 1 }

// headBuffered reports whether a whole request head is already in br's buffer.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	b = bytes.TrimLeft(b, "\r\n") // stray line ends before a request must not pass for its end
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// run calls the handler; false means the connection must close (the handler panicked).
func (c *serverConn) run(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				c.srv.logger().Error("http handler panicked", "event", "http.handler_panic", "remote", c.remote,
					"uri", req.RequestURI, "panic", v, "stack", string(debug.Stack()))
			}
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return true
}

// reject answers a request the server could not read, then closes the connection.
func (c *serverConn) reject(err error) {
	var he *httpError
	if !errors.As(err, &he) {
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
			return // the client went away or was too slow: nobody to answer
		}
		he = &httpError{status: http.StatusBadRequest, msg: err.Error()}
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		he.status, http.StatusText(he.status), len(he.msg)+1, he.msg+"\n")
	if c.bw.Flush() == nil {
		c.closeWriteAndWait()
	}
}

// closeWriteAndWait ends the sending side and gives the client a moment to read the response before
// the connection is closed: closing with unread input would reset it and could destroy the answer.
func (c *serverConn) closeWriteAndWait() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	// Whatever the client still sends is read and dropped for half a second (a client writing a big
	// upload stops once it reads the answer), then the connection is closed.
	_ = c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, c.nc)
}

// readRequest reads and checks one request head and prepares its body and response.
func (c *serverConn) readRequest() (*http.Request, *response, error) {
	budget := c.srv.maxHeader()
	var scratch []byte
	line, err := readLine(c.br, &budget, &scratch)
	for i := 0; err == nil && len(line) == 0 && i < 4; i++ { // RFC 9112 2.2: tolerate stray CRLFs
		line, err = readLine(c.br, &budget, &scratch)
	}
	if err != nil {
		return nil, nil, err
	}
	method, rest, ok1 := strings.Cut(string(line), " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(method) || target == "" {
		return nil, nil, badRequest("malformed request line %q", truncate(string(line)))
	}
	req := new(http.Request)
	*req = *c.tmpl
	req.Method, req.RequestURI, req.Proto, req.RemoteAddr = method, target, proto, c.remote
	minor, known := protoMinor(proto)
	req.ProtoMajor, req.ProtoMinor = 1, minor
	if !known {
		if strings.HasPrefix(proto, "HTTP/") {
			return nil, nil, &httpError{status: http.StatusHTTPVersionNotSupported, msg: "unsupported protocol version " + truncate(proto)}
		}
		return nil, nil, badRequest("malformed protocol %q", truncate(proto))
	}
	rawURL := target
	authority := method == http.MethodConnect && !strings.HasPrefix(target, "/")
	if authority {
		rawURL = "http://" + target
	}
	if req.URL, err = url.ParseRequestURI(rawURL); err != nil {
		return nil, nil, badRequest("malformed request target %q", truncate(target))
	}
	if authority {
		req.URL.Scheme = ""
	}

	h := make(http.Header, 12)
	if err := readFields(c.br, &budget, &scratch, h, false); err != nil {
		return nil, nil, err
	}
	req.Header = h
	req.Body = http.NoBody

	hosts := h["Host"]
	switch {
	case len(hosts) > 1:
		return nil, nil, badRequest("more than one Host header")
	case len(hosts) == 0 && req.ProtoMinor == 1:
		return nil, nil, badRequest("missing Host header")
	case len(hosts) == 1 && !validHost(hosts[0]):
		return nil, nil, badRequest("malformed Host header %q", truncate(hosts[0]))
	}
	if req.Host = req.URL.Host; req.Host == "" && len(hosts) == 1 {
		req.Host = hosts[0]
	}
	delete(h, "Host")
	req.Close = closeRequested(req.ProtoMinor, h["Connection"])

	w := &response{c: c, req: req, h: make(http.Header, 8), cl: -1}
	if err := c.framing(req, w); err != nil {
		return nil, nil, err
	}
	if ex, ok := h["Expect"]; ok {
		if len(ex) != 1 || !EqualFold(ex[0], "100-continue") {
			return nil, nil, &httpError{status: http.StatusExpectationFailed, msg: "unsupported expectation"}
		}
		delete(h, "Expect")
		if w.body != nil && req.ProtoMinor == 1 {
			w.body.cont = true
		}
	}
	return req, w, nil
}

// framing decides where the request body ends (RFC 9112 6.3) and sets req.Body.
func (c *serverConn) framing(req *http.Request, w *response) error {
	h := req.Header
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	switch {
	case len(te) > 0:
		if req.ProtoMinor == 0 {
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if len(te) != 1 || !EqualFold(te[0], "chunked") {
			return &httpError{status: http.StatusNotImplemented, msg: "unsupported Transfer-Encoding " + truncate(strings.Join(te, ", "))}
		}
		if len(cl) > 0 {
			return badRequest("both Transfer-Encoding and Content-Length")
		}
		delete(h, "Transfer-Encoding")
		req.TransferEncoding, req.ContentLength = []string{"chunked"}, -1
		w.body = &reqBody{framedBody: framedBody{br: c.br, chunk: httputil.NewChunkedReader(c.br)}, c: c, w: w}
		req.Body = w.body
	case len(cl) > 0:
		for _, v := range cl[1:] {
			if v != cl[0] {
				return badRequest("differing Content-Length values")
			}
		}
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil || cl[0][0] == '+' {
			return badRequest("malformed Content-Length %q", truncate(cl[0]))
		}
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1]
		}
		req.ContentLength = int64(n)
		if n > 0 {
			w.body = &reqBody{framedBody: framedBody{br: c.br, left: int64(n)}, c: c, w: w}
			req.Body = w.body
		}
	}
	return nil
}

// closeRequested reports whether a message asks to close the connection after it: "close" in
// Connection, or HTTP/1.0 without "keep-alive".
func closeRequested(minor int, conn []string) bool {
	keepAlive, closing := false, false
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			switch tok = TrimOWS(tok); {
			case EqualFold(tok, "close"):
				closing = true
			case EqualFold(tok, "keep-alive"):
				keepAlive = true
			}
		}
	}
	return closing || (minor == 0 && !keepAlive)
}

// reqBody is a request body read from the connection: Content-Length bytes or chunked (its
// trailer is dropped).
type reqBody struct {
	framedBody
	c      *serverConn
	w      *response
	mu     sync.Mutex // a proxy may read the body on another goroutine while the handler writes
	cont   bool       // send 100 Continue before the first read
	closed bool
}

var errBodyClosed = errors.New("http: read on closed request body")

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	if b.cont && b.err == nil && !b.eof {
		b.cont = false
		b.w.sendContinue()
	}
	return b.next(p)
}

// Close stops further reads; the server discards what is left when the response is done.
func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// drain reads what is left of the body, at most maxDrain bytes, once no other goroutine reads it;
// false means the connection cannot carry another request.
func (b *reqBody) drain() bool {
	if !b.mu.TryLock() {
		return false // a reader is blocked in the body: only closing the connection ends it
	}
	defer b.mu.Unlock()
	if b.eof {
		return true
	}
	if b.err != nil || b.cont { // a client waiting for 100 Continue sends nothing more
		return false
	}
	b.closed = true
	// A client that stops sending halfway must not hold the connection: the rest has a few seconds.
	b.c.setReadDeadline(drainTimeout)
	n, err := io.CopyN(io.Discard, readerFunc(b.read), maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// response is the http.ResponseWriter of one request.
type response struct {
	c           *serverConn
	req         *http.Request
	body        *reqBody // nil without a body
	h           http.Header
	status      int    // 0 until WriteHeader
	committed   bool   // the head is in the write buffer
	pending     []byte // body written before the head, to send a Content-Length if the handler ends soon
	cl          int64  // Content-Length sent, or -1
	written     int64
	chunked     bool
	trailers    []string // announced in the Trailer header
	noBody      bool     // HEAD, 1xx, 204, 304: the body is not sent
	closeAfter  bool
	handlerDone bool
	err         error // a failed write: the connection is broken
}

// Header returns the response header map.
func (w *response) Header() http.Header { return w.h }

// WriteHeader sends an informational (1xx) head at once, or records the final status.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || w.c.hijacked {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		if w.req.ProtoMinor == 0 {
			return // RFC 9110 15.2: no interim answers to an HTTP/1.0 client
		}
		w.c.wmu.Lock()
		defer w.c.wmu.Unlock()
		w.writeStatusLine(code)
		w.writeFields(true) // without framing fields, which an interim answer has none of
		_, _ = w.c.bw.WriteString("\r\n")
		w.fail(w.c.bw.Flush())
		return
	}
	w.status = code
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if w.req.ProtoMinor == 0 {
		_, _ = bw.WriteString("HTTP/1.0 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.1 ")
	}
	_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(http.StatusText(code))
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes the handler's header fields in name order; with framing set, Content-Length,
// Transfer-Encoding, Connection and the announced trailers are left out (the server writes its own).
func (w *response) writeFields(framing bool) {
	keys := w.c.keys[:0]
	for k := range w.h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.c.keys = keys
	bw := w.c.bw
	for _, k := range keys {
		if framing && (k == "Transfer-Encoding" || k == "Content-Length" || k == "Connection") || !isToken(k) ||
			strings.HasPrefix(k, http.TrailerPrefix) || framing && slices.Contains(w.trailers, k) {
			continue
		}
		for _, v := range w.h[k] {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v)
			}
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
}

// commit writes the final head to the buffer, deciding the framing of the body; first is the start
// of the body, for Server.SniffContentType.
func (w *response) commit(first []byte) {
	w.committed = true
	if w.status == 0 {
		w.status = http.StatusOK
	}
	c, req, code := w.c, w.req, w.status
	w.noBody = req.Method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	if v := w.h["Content-Length"]; len(v) > 0 && code != http.StatusNoContent && code >= 200 {
		if n, err := strconv.ParseUint(v[0], 10, 63); err == nil {
			w.cl = int64(n)
		}
	}
	for _, v := range w.h["Connection"] {
		if strings.Contains(strings.ToLower(v), "close") {
			w.closeAfter = true // the handler asks to close
		}
	}
	for _, v := range w.h["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = textproto.TrimString(k); k != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	switch {
	case w.noBody || w.cl >= 0 || code == http.StatusSwitchingProtocols:
	case w.handlerDone && len(w.trailers) == 0 && !hasPrefixed(w.h):
		w.cl = int64(len(w.pending))
	case req.ProtoMinor >= 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0 without a length: the body ends with the connection
	}
	if req.Close || c.srv.shutting.Load() {
		w.closeAfter = true
	}
	if _, ok := w.h["Content-Type"]; !ok && c.srv.SniffContentType && len(first) > 0 && !w.noBody &&
		len(w.h["Content-Encoding"]) == 0 {
		w.h["Content-Type"] = []string{http.DetectContentType(first)}
	}
	if _, ok := w.h["Date"]; !ok {
		w.h["Date"] = []string{Date()}
	}
	w.writeStatusLine(code)
	w.writeFields(true)
	bw := c.bw
	if w.cl >= 0 && (code != http.StatusNotModified || len(w.h["Content-Length"]) > 0) {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), w.cl, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case code == http.StatusSwitchingProtocols:
		w.closeAfter = true // unless the handler hijacks, nothing more is HTTP on this connection
		for _, v := range w.h["Connection"] {
			_, _ = bw.WriteString("Connection: " + newlineToSpace.Replace(v) + "\r\n")
		}
	case w.closeAfter:
		_, _ = bw.WriteString("Connection: close\r\n")
	case req.ProtoMinor == 0:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = nil
		w.writeBody(p)
	}
}

// Write sends body bytes, committing the head first.
func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if code := w.status; code == http.StatusNoContent || code == http.StatusNotModified || code < 200 {
		return 0, http.ErrBodyNotAllowed
	}
	if !w.committed && len(w.h["Content-Length"]) == 0 && len(w.pending)+len(p) <= maxPending {
		w.pending = append(w.pending, p...)
		return len(p), nil
	}
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if !w.committed {
		if len(w.pending) > 0 {
			w.commit(w.pending)
		} else {
			w.commit(p)
		}
	}
	if w.noBody { // HEAD
		return len(p), nil
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// writeBody writes p as the body (a chunk when chunked); called with wmu held, once committed.
func (w *response) writeBody(p []byte) {
	if len(p) == 0 || w.noBody {
		return
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendUint(bw.AvailableBuffer(), uint64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	w.fail(err)
	if w.chunked {
		_, _ = bw.WriteString("\r\n")
	}
	w.written += int64(len(p))
}

func (w *response) fail(err error) {
	if err != nil && w.err == nil {
		w.err = err
		w.closeAfter = true
	}
}

// hasPrefixed reports whether h holds a trailer set with http.TrailerPrefix.
func hasPrefixed(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// writeTrailers writes the trailer fields of a chunked response: those the handler announced in its
// Trailer header before the head went out, and those it set with the http.TrailerPrefix.
func (w *response) writeTrailers() {
	bw := w.c.bw
	write := func(k string, vv []string) {
		if !isToken(k) {
			return
		}
		for _, v := range vv {
			_, _ = bw.WriteString(k + ": " + newlineToSpace.Replace(v) + "\r\n")
		}
	}
	for _, k := range w.trailers {
		write(k, w.h[k])
	}
	for k, vv := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			write(name, vv)
		}
	}
}

// FlushError sends the head and what was written so far.
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if !w.committed {
		w.commit(w.pending)
	}
	w.fail(w.c.bw.Flush())
	return w.err
}

// Flush is FlushError without the error (http.Flusher).
func (w *response) Flush() { _ = w.FlushError() }

// EnableFullDuplex is there for http.ResponseController: this server always lets a handler read the
// request body after it started the response.
func (w *response) EnableFullDuplex() error { return nil }

// SetReadDeadline sets the connection's read deadline (http.ResponseController).
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.idleSet.Store(0) // the next wait for a request sets its own deadline again
	return w.c.nc.SetReadDeadline(t)
}

// SetWriteDeadline sets the connection's write deadline (http.ResponseController).
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// Hijack hands the connection to the handler (http.Hijacker). Buffered request bytes stay readable
// from the returned reader; response bytes written before are flushed first.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c.watchMu.Lock()
	c.detached = true
	c.watchMu.Unlock()
	c.stopWatch()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if w.committed || w.status != 0 || len(w.pending) > 0 {
		if !w.committed {
			w.commit(w.pending)
		}
		if err := c.bw.Flush(); err != nil {
			return nil, nil, err
		}
	}
	c.hijacked = true
	c.srv.forget(c)
	_ = c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.nc)), nil
}

// sendContinue answers Expect: 100-continue, unless the final response has started.
func (w *response) sendContinue() {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if w.committed || w.c.hijacked {
		return
	}
	_, _ = w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	if w.c.bw.Flush() != nil {
		// This runs on the body reader's goroutine: the response's error state is the handler's,
		// so the broken connection is closed and the handler's next write finds out.
		_ = w.c.nc.Close()
	}
}

// finish completes the response after the handler returned; false means the connection must close.
// An unread request body is discarded first (up to maxDrain), so that the answer can say whether the
// connection stays open; a client still waiting for 100 Continue never sends it, and the connection
// closes.
func (w *response) finish() bool {
	w.handlerDone = true
	c := w.c
	drained := true
	if w.body != nil && !w.committed {
		if drained = w.body.drain(); !drained {
			w.closeAfter = true
		}
	}
	c.wmu.Lock()
	streamed := w.committed
	if !w.committed {
		w.commit(w.pending)
	}
	if w.chunked && w.err == nil {
		_, _ = c.bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = c.bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		w.closeAfter = true // short body: the client learns it from the closed connection
	}
	if w.body != nil || w.closeAfter {
		w.fail(c.bw.Flush())
	} // else serve flushes the end of the answer
	c.wmu.Unlock()
	if w.err != nil {
		return false
	}
	if streamed && w.body != nil {
		drained = w.body.drain()
	}
	if !drained {
		c.closeWriteAndWait()
		return false
	}
	return !w.closeAfter
}

// Date is the current time in HTTP's format, recomputed at most once per second.
func Date() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &cachedDate{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	unix int64
	s    string
}

var dateCache atomic.Pointer[cachedDate]
