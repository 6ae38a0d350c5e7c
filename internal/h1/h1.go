// Package h1 is herd's HTTP/1.x on the proxy hops it owns: a client (the router to its nodes, a node
// to its process apps) and a server (the router's and the node's plain-HTTP front, see Server). Both
// are built for the hop's per-request cost, which on loopback is mostly system calls and scheduler
// wake-ups:
//
//   - The client keeps keep-alive pools per address and does a round trip without a body on the
//     caller's goroutine. http.Transport hands every request to two goroutines of its own (a writer
//     and a reader), and those hand-offs cost wake-ups. A request with a body gets one writer
//     goroutine, so that a peer may answer before it has read the whole body.
//   - A request without a body is written from inside a raw read of the connection and the answer
//     awaited there, so no read is made before the answer can be there (see awaiter). A proxied
//     request then costs two writes and three reads, one of which finds nothing (the server's look
//     for the next request on a kept-alive connection, which it cannot skip safely).
//   - Heads are parsed in one pass over the read buffer, common header names cost no allocation, and
//     a body-less GET is written without req.Write's per-request work.
//   - A byte-level path skips http.Request and header maps altogether: the server offers each
//     request whose head is already buffered to Server.Fast (an Exchange: the head parsed in place),
//     and Transport.Send sends a head as bytes and hands back the answer's head parsed in place
//     (RawResponse). The router forwards its common requests that way.
//   - Sockets are read and written with raw non-blocking system calls (sysConn): the runtime's
//     bookkeeping for calls that may block, and the monitor thread taking the processor away
//     from a write that runs the receiver's TCP input on loopback, are spared. Deadlines that
//     would be moved on every request (the server's idle wait, the client's response-header
//     timeout, the server's watch of a running handler) are moved only once they are a sixteenth
//     stale or have fired, and the clock is read as seldom as that allows.
//
// Dial failures come back as *DialError (nothing was sent), a node that sends no response headers in
// time as a timeout error, and cancellation follows the request's context. A request that meets a
// pooled connection the peer had already closed is sent again once on a fresh connection when that
// is safe (nothing was written, or an idempotent request with a replayable body got no byte back),
// as http.Transport does. A Transport for peers herd does not control (Config.CheckIdle: the node's
// process apps) peeks at every pooled connection before it is used again, so bytes a peer wrote
// after its answer, before the next request went out, are not read as that request's answer. Only
// plain-text HTTP/1.x is spoken: the peers are herd's own, and TLS and HTTP/2 to clients stay with
// net/http.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrGone is a request abandoned because CloseAddr closed its connection: the peer left the cluster.
var ErrGone = errors.New("node left the cluster during the request")

// DialError is a failure to connect: nothing of the request was sent, so it is safe to retry for any
// method.
type DialError struct {
	Addr string
	Err  error
}

// Error returns "dial <addr>: <cause>".
func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }

// Config sets a Transport's timeouts and pool size. Zero timeouts mean none.
type Config struct {
	DialTimeout   time.Duration // connecting
	HeaderTimeout time.Duration // from the request written to the response headers read
	IdleTimeout   time.Duration // a pooled connection unused this long is closed
	MaxIdle       int           // pooled connections kept per address (default 64)
	// CheckIdle peeks at every pooled connection before it is used again (one system call): bytes
	// the peer wrote after its last answer, or its close, are then found before the next request
	// instead of being read as that request's answer. Without it only requests that could not be
	// sent twice are checked. Set it for peers running code herd does not control (process apps):
	// one that writes past its answer must not answer the next client.
	CheckIdle bool
}

// Transport is an http.RoundTripper for plain HTTP/1.1 to a set of addresses (req.URL.Host). It is
// safe for concurrent use.
type Transport struct {
	dialer        net.Dialer
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int
	checkIdle     bool

	mu     sync.Mutex
	idle   map[string][]*h1Conn            // per address, most recently used last
	open   map[string]map[*h1Conn]struct{} // per address, every connection not closed yet (idle or serving)
	closed bool
}

// New returns a Transport with the given settings.
func New(c Config) *Transport {
	if c.MaxIdle <= 0 {
		c.MaxIdle = 64
	}
	return &Transport{dialer: net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second},
		headerTimeout: c.HeaderTimeout, idleTimeout: c.IdleTimeout, maxIdle: c.MaxIdle, checkIdle: c.CheckIdle,
		idle: map[string][]*h1Conn{}, open: map[string]map[*h1Conn]struct{}{}}
}

// Idempotent reports whether a request may be sent twice: the idempotent methods of RFC 9110, or any
// method carrying an Idempotency-Key (or X-Idempotency-Key) header.
func Idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// h1Conn is one connection to a node.
type h1Conn struct {
	t         *Transport
	addr      string
	conn      net.Conn
	io        net.Conn // conn's reads and writes (see rawIO)
	br        *bufio.Reader
	bw        *bufio.Writer
	reused    bool
	idleAt    int64        // when it went back to the pool (monoClock ns)
	usedAt    int64        // when the current request took it (monoClock ns, read once per request)
	streamed  bool         // the current answer's body came from the socket (it may have taken long)
	read      int64        // bytes read since the current request started
	written   int64        // bytes written since the current request started
	gone      atomic.Bool  // closed by CloseAddr: the node left the cluster
	responded atomic.Bool  // the final response's headers arrived (a failing body writer leaves the connection open)
	await     *awaiter     // nil without raw access to the connection
	raw       *RawResponse // reused by Send's answers
	hdrSet    int64        // when the header deadline in force was set (monoClock ns); 0: none is
}

// armHeader makes sure a read deadline for the response headers is in force: HeaderTimeout from
// now, unless one set less than a sixteenth of it ago is (moving a deadline costs a timer update,
// a measurable share of a small proxied request). A peer thus gets between 15/16 of HeaderTimeout
// and all of it to answer.
func (c *h1Conn) armHeader() {
	d := c.t.headerTimeout
	if d <= 0 {
		return
	}
	now := c.usedAt
	if c.hdrSet != 0 && now-c.hdrSet < int64(d/16) {
		return
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	c.hdrSet = now
}

// disarm clears the header deadline before reads that have no deadline (a body from the socket).
func (c *h1Conn) disarm() {
	c.streamed = true
	if c.hdrSet != 0 {
		_ = c.conn.SetReadDeadline(time.Time{})
		c.hdrSet = 0
	}
}

func (c *h1Conn) Read(p []byte) (int, error) {
	n, err := c.io.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *h1Conn) Write(p []byte) (int, error) {
	n, err := c.io.Write(p)
	c.written += int64(n)
	return n, err
}

// errConnStale is an attempt on a pooled connection that the node had closed.
var errConnStale = errors.New("h1: pooled connection closed by the peer")

// errUnsent is a body-less request the awaiter's peek stopped before its end went out: the
// connection held bytes nobody asked for, or the peer's close. It may be sent again on a fresh
// connection whatever its method.
var errUnsent = errors.New("h1: the connection had unrequested bytes or was closed by the peer; the request was not sent")

// RoundTrip implements http.RoundTripper. Interim answers (1xx other than 101, such as 103 Early
// Hints) go to the Got1xxResponse hook of the request context's httptrace.ClientTrace, if any.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.RoundTripInterim(req, nil)
}

// RoundTripInterim is RoundTrip with the interim answers (1xx other than 101) passed to interim as
// they arrive, before the final answer; an error from interim ends the round trip with that error.
// With interim nil they go to the context's trace hook, as with RoundTrip.
func (t *Transport) RoundTripInterim(req *http.Request, interim func(code int, h http.Header) error) (*http.Response, error) {
	addr := req.URL.Host
	now := monoClock()
	for fresh := false; ; fresh = true {
		// A request that could not simply be sent again (not idempotent, or with a body, which is
		// consumed into the write buffer) checks that a pooled connection is still open.
		// With CheckIdle every pooled connection is checked; a body-less request's awaiter does that
		// itself (see awaiter), with no extra system call.
		check := !Idempotent(req) || req.Body != nil || t.checkIdle
		c, err := t.conn(req.Context(), addr, fresh, check, req.Body == nil || req.Body == http.NoBody, now)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(req, interim)
		if err == nil {
			return resp, nil
		}
		c.close()
		if c.gone.Load() {
			return nil, fmt.Errorf("%w: %s: %w", ErrGone, addr, err)
		}
		if fresh || !c.reused || !c.retryable(req, err) {
			return nil, err
		}
		if req.GetBody != nil { // the body view of the failed try is retired; take a new one
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := new(http.Request)
			*r2 = *req
			r2.Body = body
			req = r2
		}
	}
}

// retryable reports whether a failure on a reused connection may be sent again on a fresh one:
// nothing was written, or nothing came back for a replayable idempotent request.
func (c *h1Conn) retryable(req *http.Request, err error) bool {
	return c.mayResend(err, req.Context().Err() != nil, req.Body == nil || req.GetBody != nil, Idempotent(req))
}

// mayResend is retryable's rule for a request the caller describes: canceled (its caller gave up),
// replayable (its body can be sent again) and idempotent.
func (c *h1Conn) mayResend(err error, canceled, replayable, idempotent bool) bool {
	if canceled || errors.Is(err, errHeaderTimeout) {
		return false
	}
	if errors.Is(err, errUnsent) {
		return true // only body-less requests are awaited: nothing to replay
	}
	if c.written == 0 {
		return replayable
	}
	return c.read == 0 && replayable && idempotent
}

// headError names a failure to read an answer's head: the header timeout (unless the caller gave
// up, canceled), or a pooled connection the peer had closed before answering.
func (c *h1Conn) headError(err error, canceled bool) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !canceled {
		return errHeaderTimeout
	}
	if c.read == 0 && c.reused && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
		return errConnStale
	}
	return err
}

// conn returns a pooled connection to addr (unless fresh) or dials one. With check, a pooled
// connection the node has closed meanwhile (or that has bytes nobody asked for) is dropped instead;
// for a body-less request on a CheckIdle transport the awaiter checks.
//
// now is the request's clock reading (monoClock): the connection's idle age, and its header
// deadline's, are judged by it, and unless the answer's body was read from the socket (which may
// take long), the connection goes back to the pool as idle since then.
func (t *Transport) conn(ctx context.Context, addr string, fresh, check, bodyless bool, now int64) (*h1Conn, error) {
	for !fresh {
		c := t.pop(addr, now)
		if c == nil {
			break
		}
		c.usedAt, c.streamed = now, false
		if check {
			c.armHeader() // before the peek: a deadline that passed while the connection was idle fails every read
		}
		if !check || (t.checkIdle && bodyless && c.await != nil) || connAlive(c.conn) {
			return c, nil
		}
		c.close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	c := &h1Conn{t: t, addr: addr, conn: nc, io: rawIO(nc), usedAt: now}
	c.br = bufio.NewReaderSize(c, 32<<10)
	c.bw = bufio.NewWriterSize(c, 8<<10)
	sys, _ := c.io.(*sysConn)
	c.await = newAwaiter(nc, c.bw, c.br, sys, t.checkIdle)
	t.mu.Lock()
	m := t.open[addr]
	if m == nil {
		m = map[*h1Conn]struct{}{}
		t.open[addr] = m
	}
	m[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

// CloseAddr closes every connection to addr, idle or serving a request: the node left the cluster.
// Requests waiting on it fail with ErrGone.
func (t *Transport) CloseAddr(addr string) {
	t.mu.Lock()
	var conns []*h1Conn
	for c := range t.open[addr] { // the idle ones among them
		conns = append(conns, c)
	}
	delete(t.idle, addr)
	delete(t.open, addr)
	t.mu.Unlock()
	for _, c := range conns {
		c.gone.Store(true)
		go c.conn.Close() // closing may block on a full socket
	}
}

func (t *Transport) pop(addr string, now int64) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[addr]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		t.idle[addr] = list
		if t.idleTimeout > 0 && now-c.idleAt > int64(t.idleTimeout) {
			delete(t.open[addr], c)
			go c.conn.Close() // closing may block on a full socket; not under the lock
			continue
		}
		c.reused = true
		return c
	}
	return nil
}

// put returns a connection whose response was read completely to the pool.
func (t *Transport) put(c *h1Conn) {
	c.idleAt = c.usedAt // an answer that was all in the buffer came at once
	if c.streamed {
		c.idleAt = monoClock()
	}
	t.mu.Lock()
	// Bytes after the end of the answer (a body sent with HEAD, 204 or 304, a wrong Content-Length)
	// would be read as the next request's answer: such a connection is closed, as net/http does.
	if t.closed || len(t.idle[c.addr]) >= t.maxIdle || c.br.Buffered() > 0 || c.gone.Load() {
		t.mu.Unlock()
		c.close()
		return
	}
	list := append(t.idle[c.addr], c)
	var expired []*h1Conn // the oldest connections sit at the bottom
	for len(list) > 1 && t.idleTimeout > 0 && c.idleAt-list[0].idleAt > int64(t.idleTimeout) {
		expired = append(expired, list[0])
		list = list[1:]
	}
	t.idle[c.addr] = list
	t.mu.Unlock()
	for _, e := range expired {
		e.close()
	}
}

// Close closes the pooled connections and makes every connection that finishes a request from now on
// close instead of going back to the pool. Requests in flight go on; new ones still dial.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// CloseIdleConnections closes the pooled connections; the transport stays usable.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.close()
		}
	}
}

func (c *h1Conn) close() {
	c.t.mu.Lock()
	if m := c.t.open[c.addr]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(c.t.open, c.addr)
		}
	}
	c.t.mu.Unlock()
	_ = c.conn.Close()
}

// errHeaderTimeout is a node that did not send response headers within ResponseHeaderTimeout.
var errHeaderTimeout = &timeoutError{"timeout awaiting response headers"}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// roundTrip writes req and reads the response headers; the body is read by the caller.
//
// A request without a body is written and its response read on the caller's goroutine. A request
// with a body is written by a goroutine of the connection's while the caller reads the response, as
// http.Transport does: a peer may answer before it has read the whole body (an early 413, a
// full-duplex echo), and waiting for the body to be written first would then stall or fail. The
// writer ends when the body is written or the connection is closed; the connection goes back to the
// pool only when the writer finished without error.
func (c *h1Conn) roundTrip(req *http.Request, interim func(code int, h http.Header) error) (*http.Response, error) {
	c.read, c.written = 0, 0
	c.responded.Store(false)
	stop := context.AfterFunc(req.Context(), func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	var wdone chan error // the writer's outcome, for a request with a body
	c.armHeader()
	if req.Body == nil || req.Body == http.NoBody {
		if err := c.writeAndAwait(req); err != nil {
			stop()
			return nil, err
		}
	} else {
		wdone = make(chan error, 1)
		go func() {
			err := c.write(req)
			if err != nil && !c.responded.Load() {
				_ = c.conn.Close() // no complete request: the response will not come, wake the reader
			}
			wdone <- err
		}()
	}
	var resp *http.Response
	for n1xx := 0; ; n1xx++ {
		var err error
		resp, err = readResponse(c.br, req)
		if err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			resp.Body.Close() // an interim answer (100 Continue, 103 Early Hints): the final one follows
			if n1xx == maxInterim {
				err = fmt.Errorf("h1: more than %d interim (1xx) answers", maxInterim)
			} else {
				err = deliverInterim(req, interim, resp)
			}
			if err == nil {
				continue
			}
			_ = c.conn.Close() // the rest of the answer will not be read
		}
		if err != nil {
			stop()
			if wdone != nil {
				_ = c.conn.Close()
				// The writer is done once the connection is closed; its error is the cause when the
				// read failed only because the writer closed the connection.
				if werr := <-wdone; werr != nil && errors.Is(err, net.ErrClosed) {
					return nil, werr
				}
			}
			return nil, c.headError(err, req.Context().Err() != nil)
		}
		c.responded.Store(true)
		break
	}
	if resp.Body != http.NoBody || resp.StatusCode == http.StatusSwitchingProtocols {
		c.disarm() // the body (or the upgraded stream) is read without a deadline
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &h1Upgraded{c: c, stop: stop}
		return resp, nil
	}
	keep := !resp.Close && !req.Close && req.Context().Err() == nil
	if resp.Body == http.NoBody {
		c.release(stop, keep, wdone)
		return resp, nil
	}
	resp.Body = &h1Body{c: c, body: resp.Body, stop: stop, keep: keep, wdone: wdone}
	return resp, nil
}

// CopyBufferSize is the size of the buffers CopyBuffer lends.
const CopyBufferSize = 32 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, CopyBufferSize); return &b }}

// CopyBuffer lends a buffer of CopyBufferSize bytes for copying a body through a proxy; give it
// back with ReleaseCopyBuffer. The router and the node's app proxy share the one pool.
func CopyBuffer() *[]byte { return copyBufs.Get().(*[]byte) }

// ReleaseCopyBuffer returns a buffer CopyBuffer lent (one of another size is dropped).
func ReleaseCopyBuffer(b *[]byte) {
	if cap(*b) == CopyBufferSize {
		*b = (*b)[:CopyBufferSize]
		copyBufs.Put(b)
	}
}

// maxInterim bounds the interim answers before a final one: a peer that sends them without end
// does not hold the round trip (the header timeout alone would let it for as long as it lasts).
const maxInterim = 16

// deliverInterim hands an interim answer to interim, or else to the request's trace hook.
func deliverInterim(req *http.Request, interim func(int, http.Header) error, resp *http.Response) error {
	if interim != nil {
		return interim(resp.StatusCode, resp.Header)
	}
	if tr := httptrace.ContextClientTrace(req.Context()); tr != nil && tr.Got1xxResponse != nil {
		return tr.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header))
	}
	return nil
}

// RelayInterim writes an interim answer that came from a backend to w, the client's writer: its
// fields go out with it and are then taken out of w's header again (values w had before under the
// same names come back), so the final answer carries only its own. 100 Continue is not relayed: a
// front answers the client's Expect: 100-continue itself.
func RelayInterim(w http.ResponseWriter, code int, h http.Header) {
	if code == http.StatusContinue {
		return
	}
	dst := w.Header()
	var saved http.Header // allocated only when a name collides
	for k, vv := range h {
		if old, ok := dst[k]; ok {
			if saved == nil {
				saved = http.Header{}
			}
			saved[k] = old
		}
		dst[k] = vv
	}
	w.WriteHeader(code)
	for k := range h {
		delete(dst, k)
	}
	for k, vv := range saved {
		dst[k] = vv
	}
}

// writeAndAwait sends a request without a body and waits until the answer starts to arrive.
func (c *h1Conn) writeAndAwait(req *http.Request) error {
	if c.await == nil || c.br.Buffered() > 0 {
		return c.write(req)
	}
	if !writeSimple(c.bw, req) {
		if err := req.Write(c.bw); err != nil {
			return err
		}
	}
	return c.await.flushAndAwait()
}

// write sends req (head and body) and flushes it.
func (c *h1Conn) write(req *http.Request) error {
	if !writeSimple(c.bw, req) {
		if err := req.Write(c.bw); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// writeSimple writes the head of a GET or HEAD without a body the way req.Write would (same fields,
// not sorted), without its per-request allocations; false means req needs req.Write.
func writeSimple(bw *bufio.Writer, req *http.Request) bool {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || (req.Body != nil && req.Body != http.NoBody) ||
		req.ContentLength != 0 || req.Close || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 || req.URL == nil {
		return false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	for i := 0; i < len(host); i++ {
		switch b := host[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', strings.IndexByte("-.:[]_", b) >= 0:
		default:
			return false // punycode, a zone to remove, an odd host: req.Write knows how
		}
	}
	uri := req.URL.RequestURI()
	if strings.ContainsAny(uri, " \r\n") {
		return false
	}
	_, _ = bw.WriteString(req.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(uri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	field := func(k, v string) {
		if v == "" && k == "User-Agent" {
			return
		}
		if strings.ContainsAny(v, "\r\n") {
			v = newlineToSpace.Replace(v)
		}
		v = textproto.TrimString(v)
		_, _ = bw.WriteString(k)
		_, _ = bw.WriteString(": ")
		_, _ = bw.WriteString(v)
		_, _ = bw.WriteString("\r\n")
	}
	ua := "Go-http-client/1.1" // req.Write's default, and only the first value of the header
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	field("User-Agent", ua)
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !isToken(k) {
			continue // as req.Write does
		}
		for _, v := range vv {
			field(k, v)
		}
	}
	_, _ = bw.WriteString("\r\n")
	return true
}

// release ends a request on c: back to the pool when the response was read to its end, the request
// was written completely (wdone, when the request had a body) and the connection may be kept;
// closed otherwise, which also ends a writer still blocked on a peer that stopped reading.
func (c *h1Conn) release(stop func() bool, keep bool, wdone chan error) {
	if wdone != nil {
		select {
		case err := <-wdone:
			keep = keep && err == nil
		default:
			keep = false // the peer answered before it read the whole body
		}
	}
	if !stop() || !keep { // stop false: the context fired and poisoned the deadline
		c.close()
		return
	}
	c.t.put(c)
}

// h1Body is a response body; reading it to the end gives the connection back to the pool.
type h1Body struct {
	c     *h1Conn
	body  io.ReadCloser
	stop  func() bool
	keep  bool
	wdone chan error
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.done = true
		b.c.release(b.stop, b.keep, b.wdone)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.stop()
		b.c.close() // the rest of the body is unread: the connection cannot be reused
	}
	return nil
}

// h1Upgraded is the connection after 101 Switching Protocols: bytes the node sent after its
// response headers are read from the buffer first.
type h1Upgraded struct {
	c    *h1Conn
	stop func() bool
	once sync.Once
}

func (u *h1Upgraded) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *h1Upgraded) Write(p []byte) (int, error) { return u.c.conn.Write(p) }
func (u *h1Upgraded) Close() error {
	u.once.Do(func() { u.stop(); u.c.close() })
	return nil
}
