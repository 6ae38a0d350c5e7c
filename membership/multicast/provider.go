// Package multicast is a membership.Provider that finds members through
// heartbeats on an IPv4 multicast group, like Tomcat's McastService.
//
// Every Frequency each member sends its record to the group; a member not
// heard for DropTime is dead, and a member that calls Leave sends an
// authenticated leave so peers drop it at once. Packets carry the cluster
// name, the sender's incarnation (start time), a sequence number and a
// timestamp, and are signed with HMAC-SHA256 under a key derived from the
// cluster secret and name. Packets of another cluster, with a bad MAC,
// malformed, outside the clock-skew window, or not newer than the last one
// seen from that incarnation are dropped and counted (Stats).
//
// The socket is always pinned to Config.Interface (IP_MULTICAST_IF and the
// group join); the kernel's default route is never used.
package multicast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

// leaveCopies is how many leave packets Leave sends (UDP may drop one).
const leaveCopies = 3

// Stats counts packets. Every counter only grows.
type Stats struct {
	Sent           uint64 // packets sent
	SendErrors     uint64 // failed sends
	Received       uint64 // datagrams read from the group
	Accepted       uint64 // authenticated packets that updated the roster
	ForeignCluster uint64 // packets of another cluster name
	BadMAC         uint64 // packets of this cluster that failed authentication
	Malformed      uint64 // packets that could not be decoded
	Stale          uint64 // timestamps outside MaxClockSkew
	Replayed       uint64 // sequence numbers not newer than the last seen
	OldIncarnation uint64 // from an incarnation older than the known one
	NameConflict   uint64 // another process uses the local member's name
}

type counters struct {
	sent, sendErrors, received, accepted, foreign, badMAC, malformed,
	stale, replayed, oldInc, conflict atomic.Uint64
}

// Provider is the multicast membership provider. Create it with New.
type Provider struct {
	cfg    Config
	key    []byte
	logger *slog.Logger
	now    func() time.Time
	hub    *membership.Hub
	stats  counters
	kick   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	local    membership.Member
	rev      uint64
	record   []byte // wire encoding of local at rev
	seq      uint64
	roster   *roster
	events   *membership.Subscription
	socks    *sockets
	started  bool
	left     bool
	shutdown bool
}

var _ membership.Provider = (*Provider)(nil)

// New validates cfg and returns a provider ready to Start. It opens no sockets.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("multicast: invalid config: %w", err)
	}
	key, err := membership.DeriveKey(cfg.Secret, cfg.Cluster, membership.PurposeMulticastHMAC, 32)
	if err != nil {
		return nil, fmt.Errorf("multicast: %w", err)
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	local := normalizeLocal(cfg.Local)
	if local.Incarnation == 0 {
		local.Incarnation = uint64(now().UnixNano())
	}
	rec, err := wire.Encode(wire.Record{Cluster: cfg.Cluster, Rev: 1, Member: local})
	if err != nil {
		return nil, fmt.Errorf("multicast: Local: %w", err)
	}
	logger = logger.With(slog.String("member", local.Name), slog.String("cluster", cfg.Cluster))
	ctx, cancel := context.WithCancel(context.Background())
	return &Provider{
		cfg: cfg, key: key, logger: logger, now: now,
		hub:  membership.NewHub(cfg.MaxPendingEvents, logger),
		kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		local: local, rev: 1, record: rec,
		roster: newRoster(cfg.SuspectTime, cfg.DropTime, 2*cfg.MaxClockSkew+cfg.DropTime),
	}, nil
}

// Start opens the sockets on Config.Interface, joins the group and starts
// heartbeating. ctx bounds only the start-up.
func (p *Provider) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.shutdown:
		return membership.ErrShutdown
	case p.started:
		return membership.ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	socks, err := openSockets(ctx, p.cfg.Interface, p.cfg.Address, p.cfg.TTL)
	if err != nil {
		return err
	}
	p.socks, p.started = socks, true
	p.wg.Add(3)
	go p.receiveLoop()
	go p.heartbeatLoop()
	go p.reapLoop()
	p.logger.Info("multicast.started", slog.String("group", socks.group.String()),
		slog.String("interface", p.cfg.Interface), slog.Uint64("incarnation", p.local.Incarnation))
	return nil
}

// Members returns the live members (alive or suspect) and the local member,
// sorted by name, with LastHeard set (now for the local member).
func (p *Provider) Members() []membership.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := p.roster.present(now)
	l := p.local.Clone()
	l.LastHeard = now
	out = append(out, l)
	slices.SortFunc(out, func(a, b membership.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Events returns the default event stream; see membership.Provider.
func (p *Provider) Events() <-chan membership.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.events == nil {
		p.events = p.subscribeLocked()
	}
	return p.events.C()
}

// Subscribe returns an additional event stream; see membership.Provider.
func (p *Provider) Subscribe() *membership.Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.subscribeLocked()
}

func (p *Provider) subscribeLocked() *membership.Subscription {
	var initial []membership.Event
	for _, m := range p.roster.present(p.now()) {
		initial = append(initial, membership.Event{Type: membership.EventJoin, Member: m})
	}
	return p.hub.Subscribe(initial)
}

// Local returns a copy of the local member.
func (p *Provider) Local() membership.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.local.Clone()
	l.LastHeard = p.now()
	return l
}

// UpdateLocal changes the local record and sends a heartbeat at once.
func (p *Provider) UpdateLocal(fn func(*membership.Member)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.shutdown:
		return membership.ErrShutdown
	case p.left:
		return membership.ErrLeft
	}
	m := p.local.Clone()
	fn(&m)
	m.Name, m.Incarnation, m.State, m.LastHeard = p.local.Name, p.local.Incarnation, p.local.State, time.Time{}
	m = normalizeLocal(m)
	if membership.SameRecord(m, p.local) {
		return nil
	}
	rec, err := wire.Encode(wire.Record{Cluster: p.cfg.Cluster, Rev: p.rev + 1, Member: m})
	if err != nil {
		return fmt.Errorf("multicast: update local member: %w", err)
	}
	p.local, p.record = m, rec
	p.rev++
	p.kickLocked()
	return nil
}

// Leave stops heartbeats and sends leave packets so peers drop this member
// at once. It is idempotent.
func (p *Provider) Leave(ctx context.Context) error {
	p.mu.Lock()
	switch {
	case p.shutdown:
		p.mu.Unlock()
		return membership.ErrShutdown
	case !p.started:
		p.mu.Unlock()
		return membership.ErrNotStarted
	case p.left:
		p.mu.Unlock()
		return nil
	}
	p.left = true
	p.local.State = membership.StateLeaving
	p.mu.Unlock()
	p.logger.Info("multicast.leaving")
	var errs []error
	for i := 0; i < leaveCopies; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		errs = append(errs, p.send(kindLeave))
	}
	if len(errs) > 0 && !slices.Contains(errs, nil) {
		return fmt.Errorf("multicast: send leave: %w", errors.Join(errs...))
	}
	return nil
}

// Shutdown closes the sockets, stops every goroutine and closes the event
// streams. Without Leave first, peers see this member die after DropTime.
// It is idempotent.
func (p *Provider) Shutdown() error {
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		return nil
	}
	p.shutdown = true
	socks := p.socks
	p.mu.Unlock()
	p.cancel()
	if socks != nil {
		socks.close()
	}
	p.wg.Wait()
	p.hub.Close()
	p.logger.Info("multicast.shutdown")
	return nil
}

// Stats returns a snapshot of the packet counters.
func (p *Provider) Stats() Stats {
	c := &p.stats
	return Stats{Sent: c.sent.Load(), SendErrors: c.sendErrors.Load(), Received: c.received.Load(),
		Accepted: c.accepted.Load(), ForeignCluster: c.foreign.Load(), BadMAC: c.badMAC.Load(),
		Malformed: c.malformed.Load(), Stale: c.stale.Load(), Replayed: c.replayed.Load(),
		OldIncarnation: c.oldInc.Load(), NameConflict: c.conflict.Load()}
}
