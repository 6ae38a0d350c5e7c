// Package server is the herd node's HTTP container: it deploys webapps from bundles (static files, a
// supervised process behind a reverse proxy) or mounts in-process handlers, routes each request by
// context path to the right app version, wraps every request in the valve chain, binds the request to
// its HTTP session, watches the deploy directory, and serves /healthz, /readyz and the manager API.
//
// The server speaks in its own terms (Options, App); package cluster builds Options from the config.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/dirwatch"
	"github.com/herdproject/herd/internal/h1"
	"github.com/herdproject/herd/session"
	"github.com/herdproject/herd/valve"
)

// Options configures a Server. Zero values take the defaults noted.
type Options struct {
	// Name is the node name: the route suffix of its session ids and HERD_NODE for process apps.
	Name string
	// HTTPAddr is the listen address, e.g. "127.0.0.1:8081" (":0" picks a port; see Addr).
	HTTPAddr string
	// Listener, when set, is used instead of listening on HTTPAddr (tests, socket activation).
	Listener net.Listener
	// DeployDir is watched for bundles to deploy on this node ("" disables watching).
	DeployDir string
	// WorkDir holds extracted apps; required.
	WorkDir string
	// Sessions is the node's session manager; required.
	Sessions *session.Manager
	// Limits bound bundle extraction (default bundle.DefaultLimits()).
	Limits bundle.Limits
	// AppStartTimeout and AppStopTimeout bound a process app's start (until healthy) and graceful stop.
	// Defaults 60s and 10s; a manifest may set its own.
	AppStartTimeout, AppStopTimeout time.Duration
	// ShutdownTimeout bounds the drain of in-flight requests on Shutdown (default 10s).
	ShutdownTimeout time.Duration
	// Valves configures the valve chain; it can be swapped at runtime with SetValves.
	Valves ValveOptions
	// TrustedProxies are the peers whose X-Forwarded-* headers are believed (default loopback).
	TrustedProxies []netip.Prefix
	// ManagerToken is the Bearer token of /manager/api/*. Empty disables the API.
	ManagerToken string
	// ManagerUser and ManagerPassword enable basic auth on the manager API as an alternative.
	ManagerUser, ManagerPassword string
	// Members reports the cluster as this node sees it, for GET /manager/api/members. Nil lists this
	// node alone.
	Members func() []MemberInfo
	// AppsChanged is called (from the deploying goroutine) after an app was deployed, replaced or
	// undeployed, so the node can update its membership record. It must not block for long.
	AppsChanged func()
	// Reload, when set, is what POST /manager/api/reload calls (reload the config file).
	Reload func() error
	// Ready adds conditions to /readyz (for example "joined the cluster"); nil means none.
	Ready func() error
	// FarmDir, when set, is the farm's watch dir: a bundle uploaded through the manager API is put
	// there (and so deployed on every member), and undeploying one removes it from there.
	FarmDir string
	// Stats, when set, adds sections to GET /manager/api/stats (for example "replication" and "farm"):
	// each key of the map it returns becomes a top-level key of the answer.
	Stats func() map[string]any
	// Metrics is the registry the node's Prometheus instruments go to, served at /metrics behind the
	// manager auth (nil: a registry of its own).
	Metrics *prometheus.Registry
	// Logger is the node's log (nil discards).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// ValveOptions is the part of the valve chain an operator configures; all of it may change at runtime.
type ValveOptions struct {
	// AccessLog is the access log format; AccessLogOut receives its lines (default os.Stdout).
	AccessLog    valve.AccessLogFormat
	AccessLogOut io.Writer
	// Allow and Deny are the remote-address valve's lists.
	Allow, Deny []netip.Prefix
	// Filter is the replication valve's filter: matching paths never touch sessions.
	Filter *regexp.Regexp
}

// Server is a herd node's HTTP container. Create it with New, add in-process apps with Mount, then Start.
type Server struct {
	opts  Options
	log   *slog.Logger
	apps  *table
	chain atomic.Pointer[http.Handler]
	tr    *h1.Transport

	events   eventLog
	metrics  *metrics
	auth     atomic.Pointer[managerAuth]
	deployMu sync.Mutex // serializes deploys and undeploys
	bundles  map[string]deployedFile

	srv      *h1.Server
	ln       net.Listener
	runCtx   context.Context
	started  atomic.Bool
	scanned  atomic.Bool // the bundles in the deploy dir at start were deployed (or refused)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// deployedFile remembers which bundle file produced which app, so a file seen again is a no-op and a
// removed file undeploys the right app.
type deployedFile struct {
	key    string
	sha256 string
}

// New checks the options and builds the server; nothing listens or runs yet.
func New(opts Options) (*Server, error) {
	if opts.Name == "" {
		return nil, errors.New("server: Name is empty")
	}
	if opts.WorkDir == "" {
		return nil, errors.New("server: WorkDir is empty")
	}
	if opts.Sessions == nil {
		return nil, errors.New("server: Sessions is nil")
	}
	if opts.HTTPAddr == "" && opts.Listener == nil {
		return nil, errors.New("server: HTTPAddr is empty")
	}
	if opts.Limits == (bundle.Limits{}) {
		opts.Limits = bundle.DefaultLimits()
	}
	if opts.AppStartTimeout <= 0 {
		opts.AppStartTimeout = 60 * time.Second
	}
	if opts.AppStopTimeout <= 0 {
		opts.AppStopTimeout = 10 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.TrustedProxies == nil {
		opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(opts.WorkDir, "apps"), 0o755); err != nil {
		return nil, fmt.Errorf("server: work dir: %w", err)
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, log: opts.Logger, apps: newTable(), tr: newAppTransport(), bundles: map[string]deployedFile{}}
	s.metrics = newMetrics(opts.Metrics, opts.Sessions, func() int { return len(s.apps.load().byKey) })
	s.SetValves(opts.Valves)
	s.SetManagerAuth(opts.ManagerToken, opts.ManagerUser, opts.ManagerPassword)
	return s, nil
}

// SetValves builds a new valve chain and swaps it in; requests already running finish on the old one.
func (s *Server) SetValves(v ValveOptions) {
	if v.AccessLogOut == nil {
		v.AccessLogOut = os.Stdout
	}
	h := buildChain(v, s.log, s.opts.Now, s.metrics.valve(), http.HandlerFunc(s.route))
	s.chain.Store(&h)
}

// buildChain lists the node's valves in the order they run, outermost first.
func buildChain(v ValveOptions, log *slog.Logger, now func() time.Time, metrics valve.Valve, next http.Handler) http.Handler {
	return valve.Chain(next,
		valve.RequestID(now),                         // per-request Info; everything below relies on it
		valve.AccessLog(v.AccessLog, v.AccessLogOut), // after the response, one line
		metrics,                           // request count and duration by app and status
		valve.Recover(log),                // a panicking app answers 500, the node lives on
		valve.RemoteAddr(v.Allow, v.Deny), // 403 before any work
		valve.Replication(v.Filter),       // filtered paths never touch sessions
	)
}

// ServeHTTP runs a request through the current valve chain.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.chain.Load()).ServeHTTP(w, r)
}

// route sends node paths to the node and everything else to the app whose context matches.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/healthz":
		s.healthz(w, r)
		return
	case p == "/readyz":
		s.readyz(w, r)
		return
	case p == "/metrics":
		if s.managerAuthorized(w, r) {
			s.metrics.handler().ServeHTTP(w, r)
		}
		return
	case p == "/manager" || len(p) >= 9 && p[:9] == "/manager/":
		s.manager(w, r)
		return
	}
	versions := s.apps.load().match(r.URL.Path)
	if len(versions) == 0 {
		http.Error(w, "404 page not found: no app is deployed at "+r.URL.Path, http.StatusNotFound)
		return
	}
	app := s.pickVersion(versions, r)
	if info := valve.InfoFrom(r.Context()); info != nil {
		info.App = app.Key
	}
	app.handler.ServeHTTP(w, r)
}

// pickVersion implements parallel deployment: a request whose session was created by one version
// stays on it; everything else goes to the newest version that is running.
func (s *Server) pickVersion(versions []*App, r *http.Request) *App {
	if len(versions) == 1 {
		return versions[0]
	}
	if !session.Skipped(r) {
		for _, sess := range s.opts.Sessions.Sessions(r) {
			for _, a := range versions {
				if a.Key == sess.App() {
					return a
				}
			}
		}
	}
	for i := len(versions) - 1; i >= 0; i-- {
		if versions[i].State() == AppRunning {
			return versions[i]
		}
	}
	return versions[len(versions)-1]
}

// Start listens, deploys the bundles already in the deploy dir and starts watching it. The node runs
// until ctx is cancelled or Shutdown is called.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("server: already started")
	}
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.opts.HTTPAddr); err != nil {
			return fmt.Errorf("server: listen on %s: %w", s.opts.HTTPAddr, err)
		}
	}
	s.ln = ln
	ctx, s.cancel = context.WithCancel(ctx)
	s.runCtx = ctx
	// herd's own HTTP/1.x server: less work per request than net/http's (see internal/h1), with
	// net/http's content sniffing kept for apps that rely on it.
	s.srv = &h1.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		Log:               s.log,
		BaseContext:       ctx,
		SniffContentType:  true,
	}
	s.goFunc(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "event", "node.http_error", "err", err)
		}
	})
	if s.opts.DeployDir != "" {
		w, err := s.newDeployWatcher()
		if err != nil {
			s.cancel()
			_ = ln.Close()
			return err
		}
		s.goFunc(func() {
			if err := w.Run(ctx, func(ev dirwatch.Event) { s.onDeployDirEvent(ctx, ev) }); err != nil {
				s.log.Error("deploy dir watch stopped", "event", "deploy.watch_error", "err", err)
			}
		})
	}
	s.log.Info("node listening", "event", "node.listening", "node", s.opts.Name, "http", ln.Addr().String())
	return nil
}

func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.opts.HTTPAddr
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections, lets in-flight requests finish (up to ShutdownTimeout or ctx),
// then stops every app. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { s.shutErr = s.shutdown(ctx) })
	return s.shutErr
}

func (s *Server) shutdown(ctx context.Context) error {
	var errs []error
	if s.srv != nil {
		dctx, cancel := context.WithTimeout(ctx, s.opts.ShutdownTimeout)
		if err := s.srv.Shutdown(dctx); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
			_ = s.srv.Close()
		}
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	for _, a := range s.apps.load().apps() {
		s.apps.remove(a.Key)
		if err := s.stopApp(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	s.tr.Close()
	s.log.Info("node stopped", "event", "node.stopped", "node", s.opts.Name)
	return errors.Join(errs...)
}
