package router

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdproject/herd/config"
	"github.com/herdproject/herd/membership"
)

// Policies for requests without a live sticky node (Settings.Policy).
const (
	PolicyRoundRobin       = "round-robin"
	PolicyLeastConnections = "least-connections"
)

// Replica placement of the nodes' session manager (Options.Replication).
const (
	// ReplicationDelta: every node holds every session; any live node of the app can take over.
	ReplicationDelta = "delta"
	// ReplicationBackup: the sessions' backups live on placement.Owners(id, nodes, 1+Backups).
	ReplicationBackup = "backup"
)

// Membership is what the router needs from a membership provider: a snapshot and an ordered event
// stream (see membership.Provider, which satisfies it). Members is called from the router's own
// goroutine, now and then, to reconcile; the channel is read until it is closed or the router stops.
type Membership interface {
	Members() []membership.Member
	Events() <-chan membership.Event
}

// Settings is what Reload may change while the router runs. Zero fields take DefaultSettings' values.
type Settings struct {
	// Policy picks a node for a request without a live sticky node: PolicyRoundRobin or
	// PolicyLeastConnections.
	Policy string
	// RetryAfterFailure is how long a node that failed a request is skipped (unless membership says
	// it restarted).
	RetryAfterFailure time.Duration
	// MaxAttempts bounds the nodes tried for one request.
	MaxAttempts int
	// DialTimeout bounds connecting to a node.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a node's response headers.
	ResponseHeaderTimeout time.Duration
	// IdleTimeout closes idle pooled connections to nodes (client connections use the value given at
	// start).
	IdleTimeout time.Duration
	// HealthPath is polled on every node; a 2xx answer is healthy.
	HealthPath string
	// HealthInterval is how often nodes are polled.
	HealthInterval time.Duration
	// DrainTimeout is how long a draining or leaving node keeps its sticky sessions, and how long
	// Shutdown waits for requests in flight.
	DrainTimeout time.Duration
	// Backends are static node addresses (host:port) routed to besides membership's nodes. A static
	// node serves every path; its route is learnt from the session cookies it sets.
	Backends []string
}

// DefaultSettings returns the defaults of the router section of herd's config.
func DefaultSettings() Settings {
	return Settings{
		Policy:                PolicyRoundRobin,
		RetryAfterFailure:     30 * time.Second,
		MaxAttempts:           3,
		DialTimeout:           2 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleTimeout:           90 * time.Second,
		HealthPath:            "/healthz",
		HealthInterval:        5 * time.Second,
		DrainTimeout:          30 * time.Second,
	}
}

// withDefaults fills zero fields.
func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	if s.Policy == "" {
		s.Policy = d.Policy
	}
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&s.RetryAfterFailure, d.RetryAfterFailure)
	def(&s.DialTimeout, d.DialTimeout)
	def(&s.ResponseHeaderTimeout, d.ResponseHeaderTimeout)
	def(&s.IdleTimeout, d.IdleTimeout)
	def(&s.HealthInterval, d.HealthInterval)
	def(&s.DrainTimeout, d.DrainTimeout)
	if s.MaxAttempts == 0 {
		s.MaxAttempts = d.MaxAttempts
	}
	if s.HealthPath == "" {
		s.HealthPath = d.HealthPath
	}
	s.Backends = slices.Clone(s.Backends)
	return s
}

// Validate checks s (after defaults) and returns every problem, each a *FieldError.
func (s Settings) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: "Settings." + field, Reason: fmt.Sprintf(format, args...)})
	}
	if s.Policy != PolicyRoundRobin && s.Policy != PolicyLeastConnections {
		add("Policy", "is %q, want %s or %s", s.Policy, PolicyRoundRobin, PolicyLeastConnections)
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > 16 {
		add("MaxAttempts", "is %d, want 1 to 16", s.MaxAttempts)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RetryAfterFailure", s.RetryAfterFailure}, {"DialTimeout", s.DialTimeout},
		{"ResponseHeaderTimeout", s.ResponseHeaderTimeout}, {"IdleTimeout", s.IdleTimeout},
		{"HealthInterval", s.HealthInterval}, {"DrainTimeout", s.DrainTimeout}} {
		if d.v < 0 {
			add(d.name, "(%s) must not be negative", d.v)
		}
	}
	if !strings.HasPrefix(s.HealthPath, "/") {
		add("HealthPath", "%q must start with /", s.HealthPath)
	}
	for i, b := range s.Backends {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" || port == "0" {
			add(fmt.Sprintf("Backends[%d]", i), "%q is not host:port", b)
		}
	}
	return errors.Join(errs...)
}

// Options configure a Router. Zero values take the defaults noted.
type Options struct {
	// Addr is the listen address (default 127.0.0.1:8080; port 0 picks one, see Router.Addr).
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// Members is the cluster membership (role router, holding no sessions); nil routes only to
	// Settings.Backends.
	Members Membership
	// Settings is the reloadable part.
	Settings Settings
	// Cookie is the session cookie whose ".route" suffix makes a request sticky (default JSESSIONID).
	Cookie string
	// AppCookies overrides Cookie per context path ("/shop": "SHOPSESSION").
	AppCookies map[string]string
	// PinHeader names a request header that pins the request to a node (by name, route or address),
	// for tests and debugging (default X-Herd-Node). It is not forwarded.
	PinHeader string
	// Replication says where session replicas live: ReplicationDelta (default) or ReplicationBackup.
	Replication string
	// Backups is the backup manager's copies besides the primary (default 1).
	Backups int
	// TLSConfig, when set, terminates TLS (HTTP/2 is offered through ALPN).
	TLSConfig *tls.Config
	// H2C serves unencrypted HTTP/2 (prior knowledge) besides HTTP/1.1.
	H2C bool
	// MaxHeaderBytes bounds a request's header block (default 64 KiB); larger ones get 431.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body (default 1 GiB; -1: no limit); larger ones get 413.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading a request's headers from a client (default 10s).
	ReadHeaderTimeout time.Duration
	// ClientIdleTimeout closes idle client connections (default Settings.IdleTimeout at start).
	ClientIdleTimeout time.Duration
	// MaxIdlePerNode is the keep-alive pool size per node (default 256).
	MaxIdlePerNode int
	// TrustForwarded keeps the client's X-Forwarded-For chain (set it only behind another proxy).
	TrustForwarded bool
	// ReconcileInterval is how often the table is checked against Members() (default 2s).
	ReconcileInterval time.Duration
	// SessionMemo bounds the sessions whose app version the router remembers (default 65536).
	SessionMemo int
	// AccessLog receives one line per request; nil disables it.
	AccessLog io.Writer
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time (default time.Now): failure marks and drain deadlines use it.
	Clock func() time.Time
	// Metrics is the registry of the router's Prometheus instruments (nil: a registry of its own),
	// served at MetricsPath behind the manager credentials.
	Metrics *prometheus.Registry
	// MetricsPath is the path of the metrics endpoint (default /metrics); the router answers it
	// itself instead of routing it to a node.
	MetricsPath string
	// ManagerToken is the Bearer token of the metrics endpoint; ManagerUser and ManagerPassword
	// enable basic auth. With neither, the endpoint answers 403.
	ManagerToken, ManagerUser, ManagerPassword string

	// noFast serves every request through ServeHTTP (tests compare the two paths).
	noFast bool
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = config.DefaultRouterHTTP
	}
	o.Settings = o.Settings.withDefaults()
	if o.Cookie == "" {
		o.Cookie = config.DefaultCookie
	}
	if o.PinHeader == "" {
		o.PinHeader = config.DefaultPinHeader
	}
	if o.Replication == "" {
		o.Replication = ReplicationDelta
	}
	if o.Backups == 0 {
		o.Backups = 1
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 30
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.ClientIdleTimeout == 0 {
		o.ClientIdleTimeout = o.Settings.IdleTimeout
	}
	if o.MaxIdlePerNode == 0 {
		o.MaxIdlePerNode = 256
	}
	if o.ReconcileInterval == 0 {
		o.ReconcileInterval = 2 * time.Second
	}
	if o.SessionMemo == 0 {
		o.SessionMemo = 65536
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	if o.MetricsPath == "" {
		o.MetricsPath = DefaultMetricsPath
	}
	return o
}

// Validate checks o (after defaults) and returns every problem, each a *FieldError.
func (o Options) Validate() error {
	errs := []error{o.Settings.Validate()}
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !validToken(o.Cookie) {
		add("Cookie", "%q is not a valid cookie name", o.Cookie)
	}
	for ctx, name := range o.AppCookies {
		if !strings.HasPrefix(ctx, "/") || !validToken(name) {
			add("AppCookies", "entry %q: %q needs a context path starting with / and a valid cookie name", ctx, name)
		}
	}
	if !validToken(o.PinHeader) {
		add("PinHeader", "%q is not a valid header name", o.PinHeader)
	}
	if o.Replication != ReplicationDelta && o.Replication != ReplicationBackup {
		add("Replication", "is %q, want %s or %s", o.Replication, ReplicationDelta, ReplicationBackup)
	}
	if o.Backups < 1 {
		add("Backups", "is %d, want at least 1", o.Backups)
	}
	if o.MaxHeaderBytes < 1024 {
		add("MaxHeaderBytes", "is %d, want at least 1024", o.MaxHeaderBytes)
	}
	if o.MaxBodyBytes < -1 {
		add("MaxBodyBytes", "is %d, want -1 (no limit) or more", o.MaxBodyBytes)
	}
	if o.ReconcileInterval < 10*time.Millisecond {
		add("ReconcileInterval", "(%s) must be at least 10ms", o.ReconcileInterval)
	}
	if !strings.HasPrefix(o.MetricsPath, "/") {
		add("MetricsPath", "%q must start with /", o.MetricsPath)
	}
	if o.MaxIdlePerNode < 1 || o.SessionMemo < 1 {
		add("MaxIdlePerNode/SessionMemo", "must be positive (%d, %d)", o.MaxIdlePerNode, o.SessionMemo)
	}
	return errors.Join(errs...)
}

// validToken reports whether s is an RFC 7230 token (header and cookie names).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// SettingsFrom maps the reloadable part of herd's config to Settings.
func SettingsFrom(r config.Reloadable) Settings {
	return Settings{
		Policy:                r.RouterPolicy,
		RetryAfterFailure:     r.RetryAfterFailure.Duration(),
		MaxAttempts:           r.MaxAttempts,
		DialTimeout:           r.DialTimeout.Duration(),
		ResponseHeaderTimeout: r.ResponseHeaderTimeout.Duration(),
		IdleTimeout:           r.IdleTimeout.Duration(),
		HealthPath:            r.HealthPath,
		HealthInterval:        r.HealthInterval.Duration(),
		DrainTimeout:          r.DrainTimeout.Duration(),
		Backends:              slices.Clone(r.Backends),
	}
}

// OptionsFrom maps herd's config (router section, sessions cookie, replication manager) to Options.
// Members, Listener, TLS, AccessLog, Logger and Clock are left for the caller.
func OptionsFrom(cfg *config.Config) Options {
	o := Options{
		Addr:      cfg.Router.HTTP,
		Settings:  SettingsFrom(cfg.Reloadable()),
		Cookie:    cfg.Router.Cookie,
		PinHeader: cfg.Router.PinHeader,
		Backups:   cfg.Cluster.Replication.Backups,

		ManagerToken:    cfg.Manager.Token,
		ManagerUser:     cfg.Manager.Username,
		ManagerPassword: cfg.Manager.Password,
	}
	if o.Cookie == "" {
		o.Cookie = cfg.Sessions.Cookie
	}
	if cfg.Cluster.Replication.Manager == config.ManagerBackup {
		o.Replication = ReplicationBackup
	}
	return o
}
