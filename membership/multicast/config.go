package multicast

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/herdproject/herd/membership"
)

// Config configures a multicast Provider. Start from DefaultLANConfig or
// DefaultLocalConfig, then set Cluster, Secret, Local and Interface.
type Config struct {
	// Cluster is the cluster name; packets of other clusters are dropped.
	Cluster string
	// Secret authenticates heartbeats (HMAC-SHA256 with a key derived from
	// Secret and Cluster). At least membership.MinSecretLen bytes.
	Secret string
	// Local is the local member's record. Route defaults to Name;
	// Incarnation 0 means "the start time in Unix nanoseconds".
	Local membership.Member

	// Address is the multicast group and port, e.g. "228.0.0.4:45564".
	Address string
	// Interface names the network interface that heartbeats are sent from
	// and the group is joined on ("lo" for a single host). Required: the
	// kernel's default-route interface is never used implicitly.
	Interface string
	// TTL is the multicast time-to-live, 1 to 255 (1: never routed).
	TTL int

	// Frequency is the heartbeat interval.
	Frequency time.Duration
	// SuspectTime: a member not heard for this long is reported as suspect
	// in Members() (no event).
	SuspectTime time.Duration
	// DropTime: a member not heard for this long is dead (EventDead).
	DropTime time.Duration
	// MaxClockSkew bounds how far a heartbeat's timestamp may be from the
	// local clock; older or future packets are dropped as replays.
	MaxClockSkew time.Duration

	// MaxPendingEvents bounds each event subscriber's queue (see membership.Hub).
	MaxPendingEvents int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now. It stamps and
	// checks heartbeats and ages members (tickers use real time).
	Clock func() time.Time
}

// DefaultLANConfig returns Tomcat-like defaults for a LAN: heartbeats every
// 500ms to 228.0.0.4:45564 with TTL 1, dead after 3s of silence. Interface
// is left empty on purpose: the caller must name one.
func DefaultLANConfig() Config {
	return Config{
		Address:          "228.0.0.4:45564",
		TTL:              1,
		Frequency:        500 * time.Millisecond,
		SuspectTime:      1500 * time.Millisecond,
		DropTime:         3 * time.Second,
		MaxClockSkew:     30 * time.Second,
		MaxPendingEvents: membership.DefaultMaxPending,
	}
}

// DefaultLocalConfig is the fast profile for tests and small single-host
// clusters: Interface "lo", heartbeats every 100ms, dead after 700ms.
func DefaultLocalConfig() Config {
	c := DefaultLANConfig()
	c.Interface = "lo"
	c.Frequency = 100 * time.Millisecond
	c.SuspectTime = 350 * time.Millisecond
	c.DropTime = 700 * time.Millisecond
	return c
}

// Validate checks every field and returns all problems found, each a
// *membership.FieldError naming the field.
func (c Config) Validate() error {
	errs := []error{membership.CheckClusterSecret(c.Cluster, c.Secret)}
	add := func(field, format string, args ...any) {
		errs = append(errs, &membership.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	local := normalizeLocal(c.Local)
	if err := local.Validate(); err != nil {
		add("Local", "is invalid: %v", err)
	}
	if ap, err := netip.ParseAddrPort(c.Address); err != nil {
		add("Address", "%q is not ip:port: %v", c.Address, err)
	} else if !ap.Addr().Is4() || !ap.Addr().IsMulticast() {
		add("Address", "%q is not an IPv4 multicast group (224.0.0.0/4)", c.Address)
	} else if ap.Port() == 0 {
		add("Address", "%q has port 0; the group port must be fixed", c.Address)
	}
	if c.Interface == "" {
		add("Interface", "is required: multicast is never left to the default route's interface")
	}
	if c.TTL < 1 || c.TTL > 255 {
		add("TTL", "is %d, want 1 to 255", c.TTL)
	}
	if c.Frequency < 10*time.Millisecond {
		add("Frequency", "(%s) must be at least 10ms", c.Frequency)
	}
	if c.DropTime < 2*c.Frequency {
		add("DropTime", "(%s) must be at least twice Frequency (%s)", c.DropTime, c.Frequency)
	}
	if c.SuspectTime < c.Frequency || c.SuspectTime > c.DropTime {
		add("SuspectTime", "(%s) must be between Frequency (%s) and DropTime (%s)", c.SuspectTime, c.Frequency, c.DropTime)
	}
	if c.MaxClockSkew < c.Frequency {
		add("MaxClockSkew", "(%s) must be at least Frequency (%s)", c.MaxClockSkew, c.Frequency)
	}
	if c.MaxPendingEvents < 0 {
		add("MaxPendingEvents", "is negative (%d)", c.MaxPendingEvents)
	}
	return errors.Join(errs...)
}

// normalizeLocal applies the Local defaults that need no I/O.
func normalizeLocal(m membership.Member) membership.Member {
	m = m.Clone()
	if m.Route == "" {
		m.Route = m.Name
	}
	m.State = membership.StateAlive
	return m
}
