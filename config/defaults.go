package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"time"
)

// Default values that are not derived from other keys.
const (
	DefaultNodeName    = "node1"
	DefaultNodeHTTP    = "127.0.0.1:8081"
	DefaultRouterHTTP  = "127.0.0.1:8080"
	DefaultClusterName = "herd"
	DefaultMulticast   = "228.0.0.4:45564"
	DefaultInterface   = "lo"
	DefaultGossipBind  = "127.0.0.1:7946"
	DefaultChannelBind = "127.0.0.1:4001"
	DefaultValveFilter = `.*\.(gif|js|jpe?g|png|css|ico|txt)$`
	DefaultCookie      = "JSESSIONID"
	DefaultPinHeader   = "X-Herd-Node"
)

// Default returns the configuration of a standalone node on loopback with
// every default applied (the lan profile; membership.kind none). It is what
// ApplyDefaults makes of an empty file, with node.name "node1".
func Default() Config {
	var c Config
	c.ApplyDefaults()
	return c
}

// DefaultLocal is Default with the local membership profile: short heartbeat,
// drop and rejoin timings for clusters on one host (dev, tests).
func DefaultLocal() Config {
	var c Config
	c.Cluster.Membership.Profile = ProfileLocal
	c.ApplyDefaults()
	// The profile alone does not make a cluster section "present".
	c.Cluster.Membership.Kind = KindNone
	return c
}

// profileTimings are the timing defaults of a membership profile.
type profileTimings struct {
	frequency, rejoin time.Duration
}

func timingsFor(profile string) profileTimings {
	if profile == ProfileLocal {
		return profileTimings{frequency: 100 * time.Millisecond, rejoin: 5 * time.Second}
	}
	return profileTimings{frequency: 500 * time.Millisecond, rejoin: 30 * time.Second}
}

// setDefault sets *p to v when *p is the zero value.
func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// ApplyDefaults fills every key the file left unset. It is pure and
// idempotent. A cluster section without any setting counts as absent:
// membership.kind then defaults to none (standalone), else to multicast.
func (c *Config) ApplyDefaults() {
	c.Cluster.Membership.Kind = defaultKind(c.Cluster)
	c.applyNodeDefaults()
	c.applyClusterDefaults()
	s := &c.Sessions
	setDefault(&s.Cookie, DefaultCookie)
	setDefault(&s.MaxInactive, Duration(30*time.Minute))
	setDefault(&s.MaxSize, Size(64<<10))
	setDefault(&s.SweepInterval, Duration(30*time.Second))
	r := &c.Router
	setDefault(&r.HTTP, DefaultRouterHTTP)
	setDefault(&r.Policy, PolicyRoundRobin)
	setDefault(&r.RetryAfterFailure, Duration(30*time.Second))
	setDefault(&r.Cookie, s.Cookie)
	setDefault(&r.MaxAttempts, 3)
	setDefault(&r.DialTimeout, Duration(2*time.Second))
	setDefault(&r.ResponseHeaderTimeout, Duration(60*time.Second))
	setDefault(&r.IdleTimeout, Duration(90*time.Second))
	setDefault(&r.HealthPath, "/healthz")
	setDefault(&r.HealthInterval, Duration(5*time.Second))
	setDefault(&r.DrainTimeout, Duration(30*time.Second))
	setDefault(&r.PinHeader, DefaultPinHeader)
}

// defaultKind is the membership kind for cl: its own, none when the section
// is empty, multicast otherwise.
func defaultKind(cl Cluster) string {
	if cl.Membership.Kind != "" {
		return cl.Membership.Kind
	}
	if reflect.ValueOf(cl).IsZero() {
		return KindNone
	}
	return KindMulticast
}

func (c *Config) applyNodeDefaults() {
	n := &c.Node
	setDefault(&n.Name, DefaultNodeName)
	setDefault(&n.HTTP, DefaultNodeHTTP)
	setDefault(&n.DeployDir, "./webapps")
	setDefault(&n.WorkDir, "./work")
	setDefault(&n.LogLevel, "info")
	setDefault(&n.LogFormat, LogText)
	setDefault(&n.AccessLog, AccessLogOff)
	setDefault(&n.ShutdownTimeout, Duration(10*time.Second))
	if n.TrustedProxies == nil {
		n.TrustedProxies = []CIDR{
			{netip.MustParsePrefix("127.0.0.0/8")},
			{netip.MustParsePrefix("::1/128")},
		}
	}
	setDefault(&n.MaxBundleSize, Size(512<<20))
	setDefault(&n.MaxBundleFiles, 10000)
	setDefault(&n.AppStartTimeout, Duration(60*time.Second))
	setDefault(&n.AppStopTimeout, Duration(10*time.Second))
}

func (c *Config) applyClusterDefaults() {
	cl := &c.Cluster
	setDefault(&cl.Name, DefaultClusterName)
	m := &cl.Membership
	setDefault(&m.Profile, ProfileLAN)
	t := timingsFor(m.Profile)
	setDefault(&m.Address, DefaultMulticast)
	setDefault(&m.Interface, DefaultInterface)
	setDefault(&m.Frequency, Duration(t.frequency))
	setDefault(&m.DropTime, 6*m.Frequency)
	setDefault(&m.Bind, DefaultGossipBind)
	setDefault(&m.TTL, 1)
	setDefault(&m.RejoinInterval, Duration(t.rejoin))
	rp := &cl.Replication
	setDefault(&rp.Bind, DefaultChannelBind)
	setDefault(&rp.Manager, ManagerDelta)
	setDefault(&rp.Backups, 1)
	setDefault(&rp.Mode, ModePooled)
	setDefault(&rp.PoolSize, 8)
	setDefault(&rp.AckTimeout, Duration(2*time.Second))
	setDefault(&rp.AckPolicy, AckRespond)
	setDefault(&rp.QueueSize, 10000)
	if m.Advertise == "" {
		src := rp.Bind
		if m.Kind == KindGossip || m.Kind == KindStatic {
			src = m.Bind
		}
		m.Advertise = specificHost(src)
	}
	setDefault(&cl.Valve.Filter, DefaultValveFilter)
	if cl.Farm.WatchDir != "" {
		setDefault(&cl.Farm.TempDir, filepath.Join(c.Node.WorkDir, "farm"))
	}
}

// specificHost returns the host of hostport unless it is empty or a wildcard
// address.
func specificHost(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		return ""
	}
	return host
}
