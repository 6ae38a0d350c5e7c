package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// h1Transport is the router's HTTP/1.1 client to the nodes: keep-alive pools per node, the round
// trip done on the caller's goroutine (http.Transport hands every request to two goroutines of its
// own), dial failures as *DialError, a response header timeout, and cancellation through the
// request's context. A request that meets a pooled connection the node had already closed is sent
// again once on a fresh connection when that is safe (nothing was written, or an idempotent request
// with a replayable body got no byte back), as http.Transport does.
type h1Transport struct {
	dialer        net.Dialer
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int
	now           func() time.Time

	mu     sync.Mutex
	idle   map[string][]*h1Conn            // per address, most recently used last
	active map[string]map[*h1Conn]struct{} // per address, connections serving a request
	closed bool
}

func newH1Transport(s Settings, o Options) *h1Transport {
	return &h1Transport{dialer: net.Dialer{Timeout: s.DialTimeout, KeepAlive: 30 * time.Second},
		headerTimeout: s.ResponseHeaderTimeout, idleTimeout: s.IdleTimeout, maxIdle: o.MaxIdlePerNode,
		now: time.Now, idle: map[string][]*h1Conn{}, active: map[string]map[*h1Conn]struct{}{}}
}

// h1Conn is one connection to a node.
type h1Conn struct {
	t       *h1Transport
	addr    string
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	reused  bool
	idleAt  time.Time
	read    int64       // bytes read since the current request started
	written int64       // bytes written since the current request started
	gone    atomic.Bool // closed by CloseAddr: the node left the cluster
}

func (c *h1Conn) Read(p []byte) (int, error) {
	n, err := c.conn.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *h1Conn) Write(p []byte) (int, error) {
	n, err := c.conn.Write(p)
	c.written += int64(n)
	return n, err
}

// errConnStale is an attempt on a pooled connection that the node had closed.
var errConnStale = errors.New("router: pooled connection closed by the node")

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	for fresh := false; ; fresh = true {
		// A request that could not simply be sent again (not idempotent, or with a body, which is
		// consumed into the write buffer) checks that a pooled connection is still open.
		check := !idempotent(req) || req.Body != nil
		c, err := t.conn(req.Context(), addr, fresh, check)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		c.close()
		if c.gone.Load() {
			return nil, fmt.Errorf("%w: %s: %w", ErrBackendGone, addr, err)
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
	if req.Context().Err() != nil || errors.Is(err, errHeaderTimeout) {
		return false
	}
	replayable := req.Body == nil || req.GetBody != nil
	if c.written == 0 {
		return replayable
	}
	return c.read == 0 && replayable && idempotent(req)
}

// conn returns a pooled connection to addr (unless fresh) or dials one. With check, a pooled
// connection the node has closed meanwhile is dropped instead.
func (t *h1Transport) conn(ctx context.Context, addr string, fresh, check bool) (*h1Conn, error) {
	for !fresh {
		c := t.pop(addr)
		if c == nil {
			break
		}
		if !check || connAlive(c.conn) {
			return c, nil
		}
		c.close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	c := &h1Conn{t: t, addr: addr, conn: nc}
	c.br = bufio.NewReaderSize(c, 32<<10)
	c.bw = bufio.NewWriterSize(c, 8<<10)
	t.mu.Lock()
	t.activeLocked(addr)[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

func (t *h1Transport) activeLocked(addr string) map[*h1Conn]struct{} {
	m := t.active[addr]
	if m == nil {
		m = map[*h1Conn]struct{}{}
		t.active[addr] = m
	}
	return m
}

// CloseAddr closes every connection to addr, idle or serving a request: the node left the cluster.
// Requests waiting on it fail with ErrBackendGone.
func (t *h1Transport) CloseAddr(addr string) {
	t.mu.Lock()
	conns := t.idle[addr]
	delete(t.idle, addr)
	for c := range t.active[addr] {
		conns = append(conns, c)
	}
	delete(t.active, addr)
	t.mu.Unlock()
	for _, c := range conns {
		c.gone.Store(true)
		go c.conn.Close() // closing may block on a full socket
	}
}

func (t *h1Transport) pop(addr string) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[addr]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		t.idle[addr] = list
		if t.idleTimeout > 0 && t.now().Sub(c.idleAt) > t.idleTimeout {
			go c.conn.Close() // closing may block on a full socket; not under the lock
			continue
		}
		c.reused = true
		t.activeLocked(addr)[c] = struct{}{}
		return c
	}
	return nil
}

// put returns a connection whose response was read completely to the pool.
func (t *h1Transport) put(c *h1Conn) {
	c.idleAt = t.now()
	t.mu.Lock()
	delete(t.active[c.addr], c)
	if t.closed || len(t.idle[c.addr]) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	list := append(t.idle[c.addr], c)
	var expired []*h1Conn // the oldest connections sit at the bottom
	for len(list) > 1 && t.idleTimeout > 0 && c.idleAt.Sub(list[0].idleAt) > t.idleTimeout {
		expired = append(expired, list[0])
		list = list[1:]
	}
	t.idle[c.addr] = list
	t.mu.Unlock()
	for _, e := range expired {
		e.close()
	}
}

// CloseIdleConnections closes the pooled connections; the transport stays usable.
func (t *h1Transport) CloseIdleConnections() {
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
	delete(c.t.active[c.addr], c)
	c.t.mu.Unlock()
	_ = c.conn.Close()
}

// errHeaderTimeout is a node that did not send response headers within ResponseHeaderTimeout.
var errHeaderTimeout = &timeoutError{"router: timeout awaiting response headers"}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// roundTrip writes req and reads the response headers; the body is read by the caller.
func (c *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	c.read, c.written = 0, 0
	stop := context.AfterFunc(req.Context(), func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	if c.t.headerTimeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.t.headerTimeout))
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && req.Context().Err() == nil {
				return nil, errHeaderTimeout
			}
			if c.read == 0 && c.reused && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
				return nil, errConnStale
			}
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close() // 1xx interim response (100 Continue): the final one follows
	}
	if c.t.headerTimeout > 0 {
		_ = c.conn.SetReadDeadline(time.Time{})
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &h1Upgraded{c: c, stop: stop}
		return resp, nil
	}
	keep := !resp.Close && !req.Close && req.Context().Err() == nil
	if resp.Body == http.NoBody {
		c.release(stop, keep)
		return resp, nil
	}
	resp.Body = &h1Body{c: c, body: resp.Body, stop: stop, keep: keep}
	return resp, nil
}

// release ends a request on c: back to the pool when the response was read to its end and the
// connection may be kept, closed otherwise.
func (c *h1Conn) release(stop func() bool, keep bool) {
	if !stop() || !keep { // stop false: the context fired and poisoned the deadline
		c.close()
		return
	}
	c.t.put(c)
}

// h1Body is a response body; reading it to the end gives the connection back to the pool.
type h1Body struct {
	c    *h1Conn
	body io.ReadCloser
	stop func() bool
	keep bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.done = true
		b.c.release(b.stop, b.keep)
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
