package router

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/herdproject/herd/internal/h1"
)

// newTransport is the router's HTTP/1.1 client to the nodes.
func newTransport(s Settings, o Options) *h1.Transport {
	return h1.New(h1.Config{DialTimeout: s.DialTimeout, HeaderTimeout: s.ResponseHeaderTimeout,
		IdleTimeout: s.IdleTimeout, MaxIdle: o.MaxIdlePerNode})
}

// runtime is everything Reload replaces at once: the settings, the selector chain built from them,
// and the connection pools to the nodes.
type runtime struct {
	settings  Settings
	selector  Selector
	transport *h1.Transport
}

// roundTripper selects a node for each attempt of a request and retries what is safe to retry (see
// the package doc for the rule).
type roundTripper struct{ r *Router }

// roundTrip sends the outgoing request of st to a node, retrying on others as the rule allows.
func (t roundTripper) roundTrip(st *reqState, req *http.Request) (*http.Response, error) {
	run := t.r.run.Load()
	body := newReplayBody(req.Body)
	var resp *http.Response
	err := t.attempts(run, st, req, func(b *Backend) (err error) {
		resp, err = t.try(run, b, req, body, st)
		return err
	}, func(err error) (retry, mark bool, status int) {
		var maxBytes *http.MaxBytesError
		return classify(err, req.Context().Err() != nil, errors.As(err, &maxBytes) || body.tooLarge(),
			func() bool { return h1.Idempotent(req) && body.rewind() })
	})
	return resp, err
}

// attempts calls try with each node the selector offers (sel is the request it is given) until
// one succeeds or the retry rule stops: judge classifies a failure (see classify).
func (t roundTripper) attempts(run *runtime, st *reqState, sel *http.Request, try func(*Backend) error,
	judge func(error) (retry, mark bool, status int)) error {
	var last error
	var lastNode string
	for attempt := 1; attempt <= run.settings.MaxAttempts; attempt++ {
		b := run.selector.Select(&st.pool, sel)
		if b == nil {
			return t.noBackend(st, last, lastNode, attempt-1)
		}
		if attempt > 1 {
			t.r.metrics.retry(lastNode)
		}
		st.backend, st.attempts = b, attempt
		err := try(b)
		t.r.metrics.attempt(st, b, err)
		if err == nil {
			return nil
		}
		st.pool.markTried(b)
		last, lastNode = err, b.Name
		retry, mark, status := judge(err)
		if mark {
			now := t.r.now()
			if !b.state.failed(now) {
				t.r.metrics.markIneligible(b.Name, ineligibleFailure)
			}
			b.state.failedUntil.Store(now.Add(run.settings.RetryAfterFailure).UnixNano())
		}
		t.r.log.Warn("attempt failed", "event", "router.attempt_failed", "request_id", st.id, "node", b.Name,
			"attempt", attempt, "retry", retry && attempt < run.settings.MaxAttempts, "err", err)
		if !retry {
			return &ProxyError{Status: status, Node: b.Name, Attempts: attempt, Err: err}
		}
	}
	return &ProxyError{Status: http.StatusBadGateway, Node: lastNode, Attempts: st.attempts, Err: last}
}

// noBackend is the error when the selector has nothing (more) to offer.
func (t roundTripper) noBackend(st *reqState, last error, lastNode string, attempts int) error {
	switch {
	case last != nil:
		return &ProxyError{Status: http.StatusBadGateway, Node: lastNode, Attempts: attempts, Err: last}
	case st.pool.Pin != "":
		return &ProxyError{Status: http.StatusServiceUnavailable, Attempts: attempts,
			Err: errors.Join(ErrPinnedUnavailable, errors.New("pinned to "+st.pool.Pin))}
	case st.pool.routes == nil:
		return &ProxyError{Status: http.StatusNotFound, Attempts: attempts, Err: ErrNoRoute}
	}
	return &ProxyError{Status: http.StatusServiceUnavailable, Attempts: attempts, Err: ErrNoBackend}
}

// try sends one attempt to b. req is the proxy's own outgoing copy and the transport is done with
// it when RoundTrip returns (it runs on this goroutine), so each attempt retargets it in place.
func (t roundTripper) try(run *runtime, b *Backend, req *http.Request, body *replayBody, st *reqState) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host = "http", b.Addr
	if body != nil {
		req.Body = body.attempt()
		req.GetBody = body.getBody
	}
	b.state.inflight.Add(1)
	resp, err := run.transport.RoundTripInterim(req, st.relayInterim)
	if err != nil {
		b.state.inflight.Add(-1)
		return nil, err
	}
	resp.Body = countBody(resp.Body, &b.state.inflight)
	return resp, nil
}

// classify decides whether a failed attempt may be retried elsewhere, whether the node gets a
// failure mark, and the status the client gets if it is not retried: canceled tells that the client
// went away, tooLarge that the request body broke the size limit, and replayable whether the
// request may be sent again (asked only when the answer depends on it).
func classify(err error, canceled, tooLarge bool, replayable func() bool) (retry, mark bool, status int) {
	var dial *DialError
	var netErr net.Error
	switch {
	case canceled:
		return false, false, statusClientClosed
	case tooLarge:
		return false, false, http.StatusRequestEntityTooLarge
	case errors.As(err, &dial):
		return true, true, http.StatusBadGateway
	case errors.Is(err, ErrBackendGone): // membership already took the node out: no mark needed
		return replayable(), false, http.StatusBadGateway
	case errors.As(err, &netErr) && netErr.Timeout():
		return false, true, http.StatusGatewayTimeout
	}
	return replayable(), true, http.StatusBadGateway
}

// replayBody lets a request body be offered to a second node as long as no byte of it was read.
// Each attempt reads through its own view; once an attempt is abandoned, a late read from it (the
// transport's writer may still be running) fails instead of stealing bytes from the next attempt.
type replayBody struct {
	src     io.ReadCloser
	gen     atomic.Int64 // current attempt
	read    atomic.Int64 // bytes handed out
	reading atomic.Int64 // reads in progress
	limit   atomic.Bool  // the client's body broke Options.MaxBodyBytes
}

// tooLarge reports whether reading the body hit the size limit (the transport may not pass the
// *http.MaxBytesError through).
func (b *replayBody) tooLarge() bool { return b != nil && b.limit.Load() }

// errStaleAttempt is returned to a read from an abandoned attempt.
var errStaleAttempt = errors.New("router: request body read by an abandoned attempt")

func newReplayBody(src io.ReadCloser) *replayBody {
	if src == nil || src == http.NoBody {
		return nil
	}
	return &replayBody{src: src}
}

// attempt returns the body view for the current attempt.
func (b *replayBody) attempt() io.ReadCloser { return &attemptBody{b: b, gen: b.gen.Load()} }

// getBody is the transport's GetBody: a fresh view while nothing was consumed.
func (b *replayBody) getBody() (io.ReadCloser, error) {
	if !b.rewind() {
		return nil, errors.New("router: request body already sent, cannot replay")
	}
	return b.attempt(), nil
}

// rewind retires the current attempt's view and reports whether the body is still untouched. A nil
// body is always untouched.
func (b *replayBody) rewind() bool {
	if b == nil {
		return true
	}
	b.gen.Add(1)
	return b.read.Load() == 0 && b.reading.Load() == 0
}

type attemptBody struct {
	b   *replayBody
	gen int64
}

func (a *attemptBody) Read(p []byte) (int, error) {
	a.b.reading.Add(1)
	defer a.b.reading.Add(-1)
	if a.b.gen.Load() != a.gen {
		return 0, errStaleAttempt
	}
	n, err := a.b.src.Read(p)
	a.b.read.Add(int64(n))
	if err != nil && err != io.EOF {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			a.b.limit.Store(true)
		}
	}
	return n, err
}

// Close does nothing: the body belongs to the incoming request, which the server closes.
func (a *attemptBody) Close() error { return nil }

// countBody wraps a response body so that the node's in-flight count drops when it is closed. An
// upgraded connection's body stays writable.
func countBody(rc io.ReadCloser, n *atomic.Int64) io.ReadCloser {
	if rw, ok := rc.(io.ReadWriteCloser); ok {
		return &countedRW{counted: counted{rc: rc, n: n}, w: rw}
	}
	return &counted{rc: rc, n: n}
}

type counted struct {
	rc   io.ReadCloser
	n    *atomic.Int64
	done atomic.Bool
}

func (c *counted) Read(p []byte) (int, error) { return c.rc.Read(p) }

func (c *counted) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.n.Add(-1)
	}
	return c.rc.Close()
}

type countedRW struct {
	counted
	w io.Writer
}

func (c *countedRW) Write(p []byte) (int, error) { return c.w.Write(p) }
