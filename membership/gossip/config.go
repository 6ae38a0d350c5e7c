package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/herdproject/herd/membership"
)

// DefaultPort is the gossip port used for seeds without one when BindAddr
// has port 0.
const DefaultPort = 7946

// Resolver looks up the addresses of a seed's host name. *net.Resolver
// implements it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Config configures a gossip Provider. Start from DefaultLANConfig or
// DefaultLocalConfig, then set Cluster, Secret, Local and Seeds.
type Config struct {
	// Cluster is the cluster name. Members of other clusters are refused.
	Cluster string
	// Secret encrypts and authenticates all gossip (memberlist's AES-GCM
	// keyring, key derived from Secret and Cluster). At least
	// membership.MinSecretLen bytes.
	Secret string
	// Local is the local member's record. Route defaults to Name;
	// Incarnation 0 means "the start time in Unix nanoseconds".
	Local membership.Member

	// BindAddr is the "ip:port" gossip listens on (TCP and UDP). Port 0
	// picks a free port; Provider.Addr reports it.
	BindAddr string
	// AdvertiseAddr is the "ip:port" peers use to reach this member, when it
	// differs from BindAddr (NAT, or BindAddr 0.0.0.0). Empty: derived.
	AdvertiseAddr string
	// Seeds are members to join: "host:port" or "host" (port of BindAddr, or
	// DefaultPort). Host names are resolved again every RejoinInterval, so a
	// Kubernetes headless service works as a seed. A static cluster is a
	// list of every member here.
	Seeds []string
	// RejoinInterval: how often seeds are re-resolved and every seed address
	// that is not a live member is joined again (this heals partitions that
	// memberlist does not heal on its own). 0 disables rejoining.
	RejoinInterval time.Duration

	// Failure detection and dissemination (memberlist's SWIM settings).
	ProbeInterval           time.Duration // how often a random member is probed
	ProbeTimeout            time.Duration // wait for a direct ack before indirect probes
	IndirectChecks          int           // members asked to probe indirectly
	SuspicionMult           int           // suspicion timeout = SuspicionMult * ProbeInterval * max(1, log10 n)
	SuspicionMaxTimeoutMult int           // upper bound multiplier while too few peers confirm
	GossipInterval          time.Duration
	GossipNodes             int
	RetransmitMult          int
	PushPullInterval        time.Duration // full state exchange with a random member
	GossipToTheDeadTime     time.Duration // keep gossiping to a dead member this long
	TCPTimeout              time.Duration // push/pull and TCP fallback probes
	// DeadNodeReclaimTime: a dead member may come back from a new address
	// (a restart on another port or IP) after this long.
	DeadNodeReclaimTime time.Duration

	// Resolver resolves seed host names; nil means net.DefaultResolver.
	Resolver Resolver
	// MaxPendingEvents bounds each event subscriber's queue (see membership.Hub).
	MaxPendingEvents int
	// Logger receives structured logs, memberlist's included; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// DefaultLANConfig returns settings for a LAN, tuned from memberlist's LAN
// profile so that a crashed member is dead everywhere within about 5s:
// probes every 500ms, suspicion 2s (up to 4s while unconfirmed).
func DefaultLANConfig() Config {
	return Config{
		BindAddr:                "0.0.0.0:7946",
		RejoinInterval:          10 * time.Second,
		ProbeInterval:           500 * time.Millisecond,
		ProbeTimeout:            300 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 2,
		GossipInterval:          200 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		PushPullInterval:        30 * time.Second,
		GossipToTheDeadTime:     30 * time.Second,
		TCPTimeout:              3 * time.Second,
		DeadNodeReclaimTime:     time.Millisecond,
		MaxPendingEvents:        membership.DefaultMaxPending,
	}
}

// DefaultLocalConfig is the fast profile for tests and small clusters on one
// host: 127.0.0.1 with a free port, probes every 100ms, dead within ~1s.
func DefaultLocalConfig() Config {
	c := DefaultLANConfig()
	c.BindAddr = "127.0.0.1:0"
	c.RejoinInterval = time.Second
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.IndirectChecks = 2
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.RetransmitMult = 3
	c.PushPullInterval = 5 * time.Second
	c.GossipToTheDeadTime = 5 * time.Second
	c.TCPTimeout = time.Second
	return c
}

// Validate checks every field and returns all problems found, each a
// *membership.FieldError naming the field.
func (c Config) Validate() error {
	errs := []error{membership.CheckClusterSecret(c.Cluster, c.Secret)}
	add := func(field, format string, args ...any) {
		errs = append(errs, &membership.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if err := normalizeLocal(c.Local).Validate(); err != nil {
		add("Local", "is invalid: %v", err)
	}
	if _, _, err := splitIPPort(c.BindAddr, true); err != nil {
		add("BindAddr", "%q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if ip, port, err := splitIPPort(c.AdvertiseAddr, false); err != nil {
			add("AdvertiseAddr", "%q: %v", c.AdvertiseAddr, err)
		} else if ip.IsUnspecified() || port == 0 {
			add("AdvertiseAddr", "%q must be a concrete ip:port", c.AdvertiseAddr)
		}
	}
	for i, s := range c.Seeds {
		if _, _, err := parseSeed(s, DefaultPort); err != nil {
			add(fmt.Sprintf("Seeds[%d]", i), "%q: %v", s, err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout}, {"GossipInterval", c.GossipInterval},
		{"PushPullInterval", c.PushPullInterval}, {"GossipToTheDeadTime", c.GossipToTheDeadTime},
		{"TCPTimeout", c.TCPTimeout}, {"DeadNodeReclaimTime", c.DeadNodeReclaimTime}} {
		if d.v <= 0 {
			add(d.name, "(%s) must be positive", d.v)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		add("ProbeTimeout", "(%s) must be less than ProbeInterval (%s)", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.RejoinInterval < 0 || (c.RejoinInterval > 0 && c.RejoinInterval < c.ProbeInterval) {
		add("RejoinInterval", "(%s) must be 0 (off) or at least ProbeInterval (%s)", c.RejoinInterval, c.ProbeInterval)
	}
	for _, n := range []struct {
		name   string
		v, min int
	}{{"IndirectChecks", c.IndirectChecks, 0}, {"SuspicionMult", c.SuspicionMult, 1},
		{"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult, 1}, {"GossipNodes", c.GossipNodes, 1},
		{"RetransmitMult", c.RetransmitMult, 1}, {"MaxPendingEvents", c.MaxPendingEvents, 0}} {
		if n.v < n.min {
			add(n.name, "is %d, want at least %d", n.v, n.min)
		}
	}
	return errors.Join(errs...)
}

func normalizeLocal(m membership.Member) membership.Member {
	m = m.Clone()
	if m.Route == "" {
		m.Route = m.Name
	}
	m.State = membership.StateAlive
	return m
}

// splitIPPort parses "ip:port" (an IP literal, not a name).
func splitIPPort(s string, allowZeroPort bool) (net.IP, int, error) {
	host, sport, err := net.SplitHostPort(s)
	if err != nil {
		return nil, 0, err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("%q is not an IP address", host)
	}
	port, err := strconv.Atoi(sport)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !allowZeroPort) {
		return nil, 0, fmt.Errorf("bad port %q", sport)
	}
	return ip, port, nil
}

// parseSeed splits "host[:port]" (host may be a name, an IPv4 or a
// bracketed IPv6 address) and applies defPort.
func parseSeed(s string, defPort int) (host string, port int, err error) {
	if s == "" {
		return "", 0, errors.New("empty seed")
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host name, IPv4 or (unbracketed) IPv6 address.
		if ip := net.ParseIP(s); ip != nil || validHostname(s) {
			return s, defPort, nil
		}
		return "", 0, fmt.Errorf("not host or host:port: %w", err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if net.ParseIP(h) == nil && !validHostname(h) {
		return "", 0, fmt.Errorf("bad host %q", h)
	}
	return h, port, nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
