package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"time"

	"github.com/herdproject/herd/internal/h1"
	"github.com/herdproject/herd/session"
	"github.com/herdproject/herd/session/wire"
	"github.com/herdproject/herd/supervisor"
)

// processApp proxies a context path to a supervised process. The node owns the session: it passes the
// session to the app in the Herd-Session request header and applies what the app sends back in
// Herd-Session-Update (docs/session-protocol.md). Bodies stream both ways; nothing is buffered.
type processApp struct {
	key   string
	proc  *supervisor.Process
	proxy *httputil.ReverseProxy
	log   *slog.Logger
}

func newProcessApp(key string, proc *supervisor.Process, tr *h1.Transport, trusted []netip.Prefix, log *slog.Logger) *processApp {
	a := &processApp{key: key, proc: proc, log: log}
	a.proxy = &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { a.rewrite(pr, trusted) },
		Transport:      appTransport{tr},
		ModifyResponse: a.modifyResponse,
		ErrorHandler:   a.errorHandler,
		FlushInterval:  0, // streams (unknown length, event streams) flush at once; sized bodies need no timer
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BufferPool:     copyBuffers{},
	}
	return a
}

// copyBuffers lends the proxy its body-copy buffers (h1's pool, shared with the router): without a
// pool, every proxied response would allocate (and the GC then sweep) 32 KiB.
type copyBuffers struct{}

// Get takes a buffer from the pool.
func (copyBuffers) Get() []byte { return *h1.CopyBuffer() }

// Put returns a buffer to the pool.
func (copyBuffers) Put(b []byte) { h1.ReleaseCopyBuffer(&b) }

func (a *processApp) ready() bool { return a.proc.Ready() }
func (a *processApp) status() any { return a.proc.Status() }
func (a *processApp) stop(ctx context.Context) error {
	return a.proc.Stop(ctx)
}

func (a *processApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.proc.Ready() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("app %s is not running (state %s)", a.key, a.proc.State()), http.StatusServiceUnavailable)
		return
	}
	// The app decides when it answers: it may stream its response while the request body still
	// comes in. Without this, Go's server would cut the request body off at the first response byte.
	_ = http.NewResponseController(w).EnableFullDuplex()
	// The app's interim answers (103 Early Hints) go to w through the transport (appTransport), not
	// through the proxy's trace hook, which would clear the fields the valves set for the final answer.
	a.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), interimKey{}, w)))
}

// interimKey is the context key under which ServeHTTP leaves the client's ResponseWriter for
// appTransport.
type interimKey struct{}

// appTransport is the node's client to its apps, passing the apps' interim answers on to the client.
type appTransport struct{ *h1.Transport }

// RoundTrip implements http.RoundTripper.
func (t appTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w, ok := req.Context().Value(interimKey{}).(http.ResponseWriter)
	if !ok {
		return t.Transport.RoundTrip(req)
	}
	return t.RoundTripInterim(req, func(code int, h http.Header) error {
		h1.RelayInterim(w, code, h)
		return nil
	})
}

func (a *processApp) rewrite(pr *httputil.ProxyRequest, trusted []netip.Prefix) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = a.proc.Addr()
	pr.Out.Host = pr.In.Host
	// Keep the forwarding chain when the request came through a trusted proxy (the herd router).
	if peerTrusted(pr.In.RemoteAddr, trusted) {
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := pr.In.Header.Values(h); len(v) > 0 {
				pr.Out.Header[h] = v
			}
		}
	}
	proto := pr.Out.Header.Get("X-Forwarded-Proto")
	host := pr.Out.Header.Get("X-Forwarded-Host")
	pr.SetXForwarded()
	if proto != "" {
		pr.Out.Header.Set("X-Forwarded-Proto", proto)
	}
	if host != "" {
		pr.Out.Header.Set("X-Forwarded-Host", host)
	}
	// Only the node speaks the session protocol: whatever a client put in Herd-Session* headers goes,
	// and the request's session (or an offer of a new one) is passed in their place.
	wire.StripHeaders(pr.Out.Header)
	if err := session.FromRequest(pr.In).ProxyRequest(pr.Out.Header); err != nil {
		a.log.Error("session not passed to the app", "event", "session.header_error", "app", a.key, "err", err)
	}
}

func (a *processApp) modifyResponse(resp *http.Response) error {
	b := session.FromRequest(resp.Request)
	if b == nil {
		if resp.Header.Get(wire.UpdateHeader) != "" {
			wire.StripHeaders(resp.Header)
			return &appProtocolError{fmt.Errorf("app %s changed a session on a request that has none (filtered path?)", a.key)}
		}
		wire.StripHeaders(resp.Header)
		return nil
	}
	if err := b.ProxyResponse(resp.Header); err != nil {
		return &appProtocolError{fmt.Errorf("session update from app %s refused: %w", a.key, err)}
	}
	return nil
}

// appProtocolError marks a response the app sent that the node refuses to pass on.
type appProtocolError struct{ err error }

func (e *appProtocolError) Error() string { return e.err.Error() }
func (e *appProtocolError) Unwrap() error { return e.err }

func (a *processApp) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var pe *appProtocolError
	switch {
	case errors.As(err, &pe):
		a.log.Error("app response refused", "event", "app.protocol_error", "app", a.key, "err", err)
		http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
	case errors.Is(err, context.Canceled):
		// The client went away; nothing to answer.
		w.WriteHeader(499)
	default:
		a.log.Warn("app unreachable", "event", "app.proxy_error", "app", a.key, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("bad gateway: app %s: %v", a.key, err), http.StatusBadGateway)
	}
}

// newAppTransport is the keep-alive pool from the node to its process apps, all on loopback. It is
// herd's own HTTP/1.1 client, which does a body-less round trip on the request's goroutine: on this hop,
// http.Transport's two extra goroutines per request cost about as much latency as the node's
// own work. No response header timeout: apps may hold long polls and event streams open. Pooled
// connections are checked before reuse: an app is code herd does not control, and one that writes past
// its answer must not answer somebody else's request with those bytes.
func newAppTransport() *h1.Transport {
	return h1.New(h1.Config{DialTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second, MaxIdle: 128, CheckIdle: true})
}

func peerTrusted(remoteAddr string, trusted []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
