package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herdproject/herd/internal/h1"
)

// reqState is the router's per-request state, made by ServeHTTP and handed to forward, the round
// tripper and the response hooks.
type reqState struct {
	id       string
	trace    traceCtx
	start    time.Time
	cookie   string
	pool     Pool
	backend  *Backend
	attempts int
	status   int
	header   time.Duration // until the response headers arrived
	err      error
	failover bool                // counted in the failover metric
	w        http.ResponseWriter // the client's, for interim answers (nil: none are passed on)

	metrics *metricCache // the client connection's series (fast path; nil: looked up each time)

	vals [10]string // backing store of the header values the router sets (saves an allocation each)
	nv   int
}

// relayInterim passes a node's interim answer (103 Early Hints, 102 Processing) on to the client
// (not a 100: the router's own server answered the client's Expect itself).
func (st *reqState) relayInterim(code int, h http.Header) error {
	if st.w != nil {
		removeHopByHop(h)
		h1.RelayInterim(st.w, code, h)
	}
	return nil
}

// setHeader sets one header value without allocating a slice for it.
func (st *reqState) setHeader(h http.Header, key, v string) {
	if st.nv == len(st.vals) {
		h[key] = []string{v}
		return
	}
	st.vals[st.nv] = v
	h[key] = st.vals[st.nv : st.nv+1 : st.nv+1]
	st.nv++
}

// ServeHTTP routes one request: it reads the session cookie, the pin header and the trace headers,
// limits the body, and hands the request to the reverse proxy, whose round tripper selects the node
// and retries.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == r.opts.MetricsPath {
		r.serveMetrics(w, req)
		return
	}
	r.active.Add(1)
	defer r.active.Add(-1)
	now := r.now()
	t := r.table.Load()
	st := &reqState{start: now, trace: newTrace(traceOf(req.Header))}
	defer r.metrics.request(st, time.Now())
	st.id = requestID(req.Header.Get(hdrRequestID), st.trace.traceID)
	st.pool = Pool{table: t, now: now, drain: r.run.Load().settings.DrainTimeout, routes: t.match(req.URL.Path)}
	st.cookie = r.cookieFor(st.pool.routes)
	st.pool.SessionID, st.pool.Route = sessionCookie(req.Header, st.cookie, func(route string) bool {
		return t.byRoute[route] != nil
	})
	if st.pool.SessionID != "" && st.pool.routes != nil && st.pool.routes.multi() {
		st.pool.Version = r.memo.get(st.pool.SessionID)
	}
	if v, ok := req.Header[r.pinKey]; ok && len(v) > 0 {
		st.pool.Pin = strings.TrimSpace(v[0])
	}
	var rec *recorder
	if r.opts.AccessLog != nil {
		rec = &recorder{ResponseWriter: w}
		w = rec
		defer func() { r.logAccess(req, st, rec) }()
	}
	if max := r.opts.MaxBodyBytes; max >= 0 && req.Body != nil && req.Body != http.NoBody {
		if req.ContentLength > max {
			r.fail(w, st, &ProxyError{Status: http.StatusRequestEntityTooLarge, Err: ErrBodyTooLarge})
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, max)
	}
	// The node decides when it answers: its response may stream while the request body still comes
	// in. Without this, Go's server would cut the request body off at the first response byte.
	_ = http.NewResponseController(w).EnableFullDuplex()
	r.forward(w, req, st)
}

// cookieFor is the session cookie name for the matched context.
func (r *Router) cookieFor(c *ctxRoutes) string {
	if c != nil && r.opts.AppCookies != nil {
		if name, ok := r.opts.AppCookies[c.path]; ok {
			return name
		}
	}
	return r.opts.Cookie
}

// rewrite sets the outgoing request's forwarding, request id and trace headers; prior is the
// client's X-Forwarded-For.
func (r *Router) rewrite(in, out *http.Request, st *reqState, prior []string) {
	h := out.Header
	client, _, err := net.SplitHostPort(in.RemoteAddr)
	switch {
	case err != nil:
		delete(h, "X-Forwarded-For")
	case r.opts.TrustForwarded && len(prior) > 0:
		st.setHeader(h, "X-Forwarded-For", strings.Join(prior, ", ")+", "+client)
	default:
		st.setHeader(h, "X-Forwarded-For", client)
	}
	st.setHeader(h, "X-Forwarded-Host", in.Host)
	if in.TLS != nil {
		st.setHeader(h, "X-Forwarded-Proto", "https")
	} else {
		st.setHeader(h, "X-Forwarded-Proto", "http")
	}
	st.setHeader(h, hdrRequestID, st.id)
	st.trace.apply(st, h)
	delete(h, r.pinKey)
	out.URL.Scheme, out.URL.Host = "http", "node" // the round tripper sets the node per attempt
}

// modifyResponse records the outcome of the node's answer and learns from the session cookie the
// node set (the route of a static backend, the app version of a new session).
func (r *Router) modifyResponse(st *reqState, res *http.Response) {
	st.status = res.StatusCode
	st.header = r.now().Sub(st.start)
	st.setHeader(res.Header, hdrRequestID, st.id)
	if lines := res.Header["Set-Cookie"]; len(lines) > 0 && st.backend != nil {
		for _, line := range lines {
			if id, route, ok := setCookieSession(line, st.cookie); ok {
				r.learn(st, id, route)
			}
		}
	}
}

// learn records what a session cookie set by st.backend teaches.
func (r *Router) learn(st *reqState, id, route string) {
	b := st.backend
	if b.Static && route != "" && b.state.learntRoute() != route {
		b.state.route.Store(&route)
		r.mu.Lock()
		r.rebuildLocked()
		r.mu.Unlock()
		r.log.Info("learnt route of static node", "event", "router.route_learnt", "node", b.Name, "route", route)
	}
	if c := st.pool.routes; c != nil && c.multi() && (id != st.pool.SessionID || st.pool.Version == "") {
		v := st.pool.Version // a renewed id keeps its session's version
		if v == "" {
			v = c.newest(b) // a new session starts on the node's newest version
		}
		if v != "" {
			r.memo.put(id, v)
		}
	}
}

// fail answers a request the router could not proxy: a clear status and message naming the
// request id.
func (r *Router) fail(w http.ResponseWriter, st *reqState, err error) {
	status, msg := failure(st, err)
	if status == statusClientClosed {
		return // nobody is listening
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h[hdrRequestID] = []string{st.id}
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// failure is the status and text of the answer to a request that failed with err; it records both
// in st.
func failure(st *reqState, err error) (status int, msg string) {
	status = http.StatusBadGateway
	var pe *ProxyError
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &pe):
		status = pe.Status
		if pe.Status == http.StatusRequestEntityTooLarge {
			err = ErrBodyTooLarge
		}
	case errors.As(err, &mb):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, context.Canceled):
		status = statusClientClosed
	}
	st.status, st.err = status, err
	return status, fmt.Sprintf("%d %s: %s\nrequest id: %s\n", status, statusText(status), publicReason(err, st), st.id)
}

// publicReason explains a failure without revealing node addresses.
func publicReason(err error, st *reqState) string {
	var dial *DialError
	var netErr net.Error
	var reason string
	switch {
	case errors.Is(err, ErrNoRoute):
		return "no node serves this path"
	case errors.Is(err, ErrPinnedUnavailable):
		return "the pinned node " + strconv.Quote(st.pool.Pin) + " is not available"
	case errors.Is(err, ErrNoBackend):
		return "no node is available for this path"
	case errors.Is(err, ErrBodyTooLarge), errors.As(err, new(*http.MaxBytesError)):
		return "request body too large"
	case errors.As(err, &dial):
		reason = "could not connect to the node"
	case errors.As(err, &netErr) && netErr.Timeout():
		reason = "the node did not answer in time"
	default:
		reason = "the node failed to answer"
	}
	node := "?"
	switch b := st.backend; {
	case b == nil:
	case !b.Static:
		node = b.Name
	case b.Route != "":
		node = b.Route
	default:
		node = "(static)"
	}
	return fmt.Sprintf("%s (last node %s, %d attempts)", reason, node, st.attempts)
}

// recorder notes the status and size of a response for the access log. Hijack and other optional
// interfaces are reached through Unwrap (http.ResponseController).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// logAccess writes the access log line of a request served by ServeHTTP.
func (r *Router) logAccess(req *http.Request, st *reqState, rec *recorder) {
	status := st.status
	if rec.status != 0 && status != statusClientClosed {
		status = rec.status
	}
	r.logLine(req.RemoteAddr, req.Method, req.URL.RequestURI(), req.Proto, status, rec.bytes, st)
}

// logLine writes one line: time, request id, trace id, client, method, path, status, bytes, node,
// attempts, time to the node's headers and total time.
func (r *Router) logLine(remote, method, uri, proto string, status int, bytes int64, st *reqState) {
	node := "-"
	if st.backend != nil {
		node = st.backend.Name
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = r.now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, " id="...)
	b = append(b, st.id...)
	b = append(b, " trace="...)
	b = append(b, st.trace.traceID...)
	b = append(b, " client="...)
	host, _, _ := net.SplitHostPort(remote)
	b = append(b, host...)
	b = append(b, ' ')
	b = append(b, method...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, uri)
	b = append(b, ' ')
	b = append(b, proto...)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, " node="...)
	b = append(b, node...)
	b = append(b, " attempts="...)
	b = strconv.AppendInt(b, int64(st.attempts), 10)
	b = append(b, " upstream_ms="...)
	b = strconv.AppendFloat(b, float64(st.header.Microseconds())/1000, 'f', 3, 64)
	b = append(b, " total_ms="...)
	b = strconv.AppendFloat(b, float64(r.now().Sub(st.start).Microseconds())/1000, 'f', 3, 64)
	b = append(b, '\n')
	r.accessMu.Lock()
	_, _ = r.opts.AccessLog.Write(b)
	r.accessMu.Unlock()
	*bp = b
	lineBufs.Put(bp)
}
