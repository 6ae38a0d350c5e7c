package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/internal/h1"
	"github.com/herdproject/herd/membership"
)

// Router is herd's sticky front router. Create it with New, then Start; it is an http.Handler too.
type Router struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	pinKey string
	// pinLower is the pin header's name in lower case (for the fast path).
	pinLower string
	// realClock: Options.Clock is time.Now, so one reading serves both the clock and the metrics.
	realClock bool
	// fastServed counts the requests served on the fast path (tests check which path ran).
	fastServed atomic.Int64
	table      atomic.Pointer[Table]
	run        atomic.Pointer[runtime]
	memo       *versionMemo
	active     atomic.Int64 // handlers running, upgraded connections included
	rounds     atomic.Int64 // rounds of active health checks completed

	metrics *metrics
	auth    atomic.Pointer[managerAuth]

	accessMu sync.Mutex

	mu      sync.Mutex // guards members, states, closed and table rebuilds
	members map[string]*memberEntry
	states  map[string]*backendState
	closed  bool

	reloaded chan struct{} // wakes the health loop after Reload

	srv        frontServer
	ln         net.Listener
	started    atomic.Bool
	cancel     context.CancelFunc // stops the router's goroutines
	baseCancel context.CancelFunc // cancels every request (upgraded connections) at the end of a drain
	stopAfter  func() bool        // unregisters the shutdown on the Start context's end
	wg         sync.WaitGroup
	shutOnce   sync.Once
	shutErr    error
}

// New checks the options and builds a router; nothing listens until Start.
func New(opts Options) (*Router, error) {
	realClock := opts.Clock == nil
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Router{opts: opts, log: opts.Logger, now: opts.Clock, pinKey: http.CanonicalHeaderKey(opts.PinHeader),
		pinLower: strings.ToLower(opts.PinHeader), realClock: realClock,
		memo: newVersionMemo(opts.SessionMemo), members: map[string]*memberEntry{},
		states: map[string]*backendState{}, reloaded: make(chan struct{}, 1)}
	r.run.Store(&runtime{settings: opts.Settings, selector: newChain(opts.Settings, opts),
		transport: newTransport(opts.Settings, opts)})
	r.metrics = newMetrics(r, opts.Metrics)
	r.SetManagerAuth(opts.ManagerToken, opts.ManagerUser, opts.ManagerPassword)
	r.mu.Lock()
	r.rebuildLocked()
	r.mu.Unlock()
	return r, nil
}

// Table returns the current routing table snapshot.
func (r *Router) Table() *Table { return r.table.Load() }

// Settings returns the settings in force.
func (r *Router) Settings() Settings {
	s := r.run.Load().settings
	s.Backends = slices.Clone(s.Backends)
	return s
}

// Start listens and serves, follows membership and starts the active health checks. The router runs
// until ctx ends or Shutdown is called.
func (r *Router) Start(ctx context.Context) error {
	var events <-chan membership.Event
	if m := r.opts.Members; m != nil {
		events = m.Events()
		r.reconcile(m.Members())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrShutdown
	}
	if !r.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	ln := r.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", r.opts.Addr); err != nil {
			return fmt.Errorf("router: listen on %s: %w", r.opts.Addr, err)
		}
	}
	r.ln = ln
	parent := ctx
	ctx, r.cancel = context.WithCancel(ctx)
	base, baseCancel := context.WithCancel(context.WithoutCancel(ctx))
	r.baseCancel = baseCancel
	r.srv = r.newServer(base)
	if events != nil {
		r.goFunc(func() { r.watch(ctx, events) })
	}
	r.goFunc(func() { r.healthLoop(ctx) })
	srv := r.srv
	r.goFunc(func() {
		err := srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("router stopped serving", "event", "router.serve_error", "err", err)
		}
	})
	// The owner's context ending is a shutdown too (AfterFunc's goroutine is not in wg: Shutdown
	// waits for wg).
	r.stopAfter = context.AfterFunc(parent, func() { _ = r.Shutdown(context.WithoutCancel(parent)) })
	r.log.Info("router listening", "event", "router.listening", "http", ln.Addr().String(),
		"tls", r.opts.TLSConfig != nil, "policy", r.opts.Settings.Policy)
	return nil
}

// frontServer is what serves the router's listener: internal/h1's server for plain HTTP/1.x, net/http's
// when TLS or HTTP/2 is wanted.
type frontServer interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// tlsServer is net/http's server terminating TLS.
type tlsServer struct{ *http.Server }

func (s tlsServer) Serve(ln net.Listener) error { return s.ServeTLS(ln, "", "") }

// newServer builds the front server. Plain HTTP/1.x (the common case behind a load balancer or on a
// private network) is served by h1.Server, which does a good part less work per request than
// net/http's; TLS and HTTP/2 need net/http's.
func (r *Router) newServer(base context.Context) frontServer {
	if r.opts.TLSConfig == nil && !r.opts.H2C {
		srv := &h1.Server{Handler: r, ReadHeaderTimeout: r.opts.ReadHeaderTimeout,
			IdleTimeout: r.opts.ClientIdleTimeout, MaxHeaderBytes: r.opts.MaxHeaderBytes,
			BaseContext: base, Log: r.log}
		if !r.opts.noFast {
			srv.Fast = r
		}
		return srv
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.opts.ReadHeaderTimeout,
		IdleTimeout:       r.opts.ClientIdleTimeout,
		MaxHeaderBytes:    r.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	var p http.Protocols
	p.SetHTTP1(true)
	if r.opts.TLSConfig != nil {
		srv.TLSConfig = r.opts.TLSConfig.Clone()
		if srv.TLSConfig.MinVersion == 0 {
			srv.TLSConfig.MinVersion = tls.VersionTLS12
		}
		p.SetHTTP2(true)
	}
	if r.opts.H2C {
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
	if srv.TLSConfig != nil {
		return tlsServer{srv}
	}
	return srv
}

func (r *Router) goFunc(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// Addr is the address the router listens on (after Start; Options.Addr before).
func (r *Router) Addr() string {
	if r.ln == nil {
		return r.opts.Addr
	}
	return r.ln.Addr().String()
}

// Reload swaps in new settings: policy, retry and timeouts, health checks, drain timeout and static
// backends. Requests in flight finish with the settings they started with; connection pools are kept
// unless a connection timeout changed.
func (r *Router) Reload(s Settings) error {
	s = s.withDefaults()
	if err := s.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrShutdown
	}
	old := r.run.Load()
	next := &runtime{settings: s, selector: newChain(s, r.opts), transport: old.transport}
	if s.DialTimeout != old.settings.DialTimeout || s.ResponseHeaderTimeout != old.settings.ResponseHeaderTimeout ||
		s.IdleTimeout != old.settings.IdleTimeout {
		next.transport = newTransport(s, r.opts)
	}
	r.run.Store(next)
	if !slices.Equal(s.Backends, old.settings.Backends) {
		r.rebuildLocked()
	}
	r.mu.Unlock()
	if next.transport != old.transport {
		old.transport.Close() // requests in flight finish on it; their connections close then
	}
	select {
	case r.reloaded <- struct{}{}:
	default:
	}
	r.log.Info("settings reloaded", "event", "router.reloaded", "policy", s.Policy, "backends", len(s.Backends))
	return nil
}

// Shutdown stops accepting connections and waits for requests in flight, upgraded connections
// included, up to DrainTimeout or ctx; then it closes what is left. It is idempotent.
func (r *Router) Shutdown(ctx context.Context) error {
	r.shutOnce.Do(func() { r.shutErr = r.shutdown(ctx) })
	return r.shutErr
}

func (r *Router) shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	srv := r.srv
	r.mu.Unlock()
	if srv == nil {
		r.run.Load().transport.Close()
		return nil
	}
	r.stopAfter()
	run := r.run.Load()
	dctx, cancel := context.WithTimeout(ctx, run.settings.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(dctx)
	r.waitIdle(dctx)
	if dctx.Err() != nil || err != nil {
		_ = srv.Close()
	}
	r.baseCancel() // upgraded connections still open are closed now
	r.waitIdle(context.WithoutCancel(ctx))
	r.cancel()
	r.wg.Wait()
	run.transport.Close()
	r.log.Info("router stopped", "event", "router.stopped")
	if err != nil {
		return fmt.Errorf("router: drain: %w", err)
	}
	return nil
}

// waitIdle waits until no handler runs or ctx ends (at most 5s once ctx has no deadline).
func (r *Router) waitIdle(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for r.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
