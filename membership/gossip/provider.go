// Package gossip is a membership.Provider on hashicorp/memberlist (SWIM
// gossip with Lifeguard). It also covers a static member list: give every
// member's address as Seeds.
//
// Records travel in memberlist's node meta, which memberlist limits to 512
// bytes. A record that fits goes there whole, so a Join event carries the
// apps. A larger record (many apps) is sent compact in meta (no Apps and
// Extra, marked partial) and whole over memberlist's encrypted TCP: pushed to
// every peer when it changes and to each newly joined peer, and exchanged in
// every push/pull. Peers then see a Join without apps followed by an Update
// with them.
//
// All gossip is encrypted and authenticated with a memberlist keyring whose
// AES-256 key is derived from the cluster secret and name, and labelled with
// the cluster name; the alive and merge hooks additionally refuse any node
// whose record names another cluster. A graceful Leave first gossips a
// record marked leaving (peers report EventLeave at once), then memberlist's
// own leave.
package gossip

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

	"github.com/hashicorp/memberlist"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

// sendQueue bounds pending full-record pushes; when full, pushes are dropped
// and push/pull catches the peer up later.
const sendQueue = 256

// Stats counts gossip-level activity. Every counter only grows.
type Stats struct {
	JoinAttempts uint64 // joins of seed addresses (at Start and on rejoin)
	JoinFailures uint64 // joins that reached no seed
	Refused      uint64 // nodes or merges refused by the admission hooks
	BadMessages  uint64 // malformed or foreign full-record messages
	RecordsSent  uint64 // full records pushed to peers over TCP
	SendErrors   uint64 // failed or dropped pushes
}

type counters struct {
	joinAttempts, joinFailures, refused, badMessages, recordsSent, sendErrors atomic.Uint64
}

type sendJob struct {
	to  memberlist.Node
	msg []byte
}

// Provider is the gossip membership provider. Create it with New.
type Provider struct {
	cfg      Config
	key      []byte
	logger   *slog.Logger
	now      func() time.Time
	resolver Resolver
	hub      *membership.Hub
	stats    counters
	sendq    chan sendJob

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	updateMu sync.Mutex // serializes record changes (UpdateLocal, Leave)

	name string // local member name, immutable
	inc  uint64 // local incarnation, immutable

	mu       sync.Mutex // never held while calling into memberlist
	ml       *memberlist.Memberlist
	addr     string
	local    membership.Member
	rev      uint64
	meta     []byte // what NodeMeta returns
	full     []byte // full record encoding
	partial  bool   // meta is the compact form
	table    *table
	events   *membership.Subscription
	started  bool
	left     bool
	shutdown bool
}

var _ membership.Provider = (*Provider)(nil)

// New validates cfg and returns a provider ready to Start. It opens no sockets.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip: invalid config: %w", err)
	}
	key, err := membership.DeriveKey(cfg.Secret, cfg.Cluster, membership.PurposeGossipKeyring, 32)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	p := &Provider{cfg: cfg, key: key, now: cfg.Clock, logger: cfg.Logger, resolver: cfg.Resolver,
		sendq: make(chan sendJob, sendQueue)}
	if p.now == nil {
		p.now = time.Now
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if p.resolver == nil {
		p.resolver = netResolver{}
	}
	local := normalizeLocal(cfg.Local)
	if local.Incarnation == 0 {
		local.Incarnation = uint64(p.now().UnixNano())
	}
	if err := p.setLocalLocked(local, 1, false); err != nil {
		return nil, fmt.Errorf("gossip: Local: %w", err)
	}
	p.name, p.inc = local.Name, local.Incarnation
	p.logger = p.logger.With(slog.String("member", local.Name), slog.String("cluster", cfg.Cluster))
	p.hub = membership.NewHub(cfg.MaxPendingEvents, p.logger)
	p.table = newTable(local.Name)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// setLocalLocked encodes m as the local record at rev, choosing the full or
// the compact form for memberlist's meta.
func (p *Provider) setLocalLocked(m membership.Member, rev uint64, leaving bool) error {
	rec := wire.Record{Cluster: p.cfg.Cluster, Rev: rev, Leaving: leaving, Member: m}
	full, err := wire.Encode(rec)
	if err != nil {
		return err
	}
	meta, partial := full, false
	if len(full) > memberlist.MetaMaxSize {
		if meta, err = wire.Encode(wire.Compact(rec)); err != nil {
			return err
		}
		if len(meta) > memberlist.MetaMaxSize {
			return fmt.Errorf("%w: compact record is %d bytes, memberlist's meta limit is %d",
				membership.ErrRecordTooLarge, len(meta), memberlist.MetaMaxSize)
		}
		partial = true
	}
	p.local, p.rev, p.full, p.meta, p.partial = m, rev, full, meta, partial
	return nil
}

// Start creates the memberlist (binding BindAddr), joins the seeds it can
// reach and starts rejoining every RejoinInterval. Unreachable seeds are not
// an error: the first member of a cluster has nobody to join. ctx bounds the
// start-up only.
func (p *Provider) Start(ctx context.Context) error {
	p.mu.Lock()
	switch {
	case p.shutdown:
		p.mu.Unlock()
		return membership.ErrShutdown
	case p.started:
		p.mu.Unlock()
		return membership.ErrStarted
	}
	p.started = true
	p.mu.Unlock()
	mc, err := p.memberlistConfig()
	if err != nil {
		return err
	}
	ml, err := memberlist.Create(mc) // calls the delegate: p.mu must be free
	if err != nil {
		return fmt.Errorf("gossip: start memberlist on %s: %w", p.cfg.BindAddr, err)
	}
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		_ = ml.Shutdown()
		return membership.ErrShutdown
	}
	p.ml, p.addr = ml, ml.LocalNode().Address()
	p.mu.Unlock()
	p.logger.Info("gossip.started", slog.String("addr", p.addr), slog.Uint64("incarnation", p.inc))
	p.wg.Add(1)
	go p.sendLoop()
	p.joinSeeds(ctx)
	if p.cfg.RejoinInterval > 0 {
		p.wg.Add(1)
		go p.rejoinLoop()
	}
	return nil
}

// Addr returns the gossip address ("ip:port") peers reach this member at,
// with the real port when BindAddr had port 0; "" before Start.
func (p *Provider) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Members returns the live peers and the local member, sorted by name. A
// peer not directly heard from for about two probe rounds is reported as
// suspect (memberlist does not expose its own suspicion).
func (p *Provider) Members() []membership.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	rounds := max(len(p.table.peers), 1)
	suspectAfter := time.Duration(2*rounds+1)*p.cfg.ProbeInterval + p.cfg.ProbeTimeout
	out := p.table.present(now, suspectAfter)
	out = append(out, p.localLocked(now))
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
	for _, m := range p.table.present(p.now(), time.Duration(1<<62)) {
		initial = append(initial, membership.Event{Type: membership.EventJoin, Member: m})
	}
	return p.hub.Subscribe(initial)
}

// Local returns a copy of the local member.
func (p *Provider) Local() membership.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.localLocked(p.now())
}

func (p *Provider) localLocked(now time.Time) membership.Member {
	l := p.local.Clone()
	l.LastHeard = now
	if p.left {
		l.State = membership.StateLeaving
	}
	return l
}

// UpdateLocal changes the local record and gossips it (memberlist
// UpdateNode; plus a TCP push of the full record when it exceeds meta).
func (p *Provider) UpdateLocal(fn func(*membership.Member)) error {
	p.updateMu.Lock()
	defer p.updateMu.Unlock()
	p.mu.Lock()
	switch {
	case p.shutdown:
		p.mu.Unlock()
		return membership.ErrShutdown
	case p.left:
		p.mu.Unlock()
		return membership.ErrLeft
	}
	m := p.local.Clone()
	fn(&m)
	m.Name, m.Incarnation, m.LastHeard = p.local.Name, p.local.Incarnation, time.Time{}
	m = normalizeLocal(m)
	if membership.SameRecord(m, p.local) {
		p.mu.Unlock()
		return nil
	}
	if err := p.setLocalLocked(m, p.rev+1, false); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("gossip: update local member: %w", err)
	}
	ml := p.ml
	if p.partial {
		for _, pe := range p.table.peers {
			p.pushLocked(pe)
		}
	}
	p.mu.Unlock()
	if ml != nil {
		if err := ml.UpdateNode(p.cfg.TCPTimeout); err != nil {
			// The update stays queued and still spreads; report, don't fail.
			p.logger.Debug("gossip.update_slow", slog.Any("error", err))
		}
	}
	return nil
}

// Leave gossips a leaving record, then memberlist's leave. It waits for
// both broadcasts up to ctx's deadline (or TCPTimeout). It is idempotent.
func (p *Provider) Leave(ctx context.Context) error {
	p.updateMu.Lock()
	defer p.updateMu.Unlock()
	p.mu.Lock()
	switch {
	case p.shutdown:
		p.mu.Unlock()
		return membership.ErrShutdown
	case !p.started || p.ml == nil:
		p.mu.Unlock()
		return membership.ErrNotStarted
	case p.left:
		p.mu.Unlock()
		return nil
	}
	p.left = true
	l := p.local.Clone()
	l.State = membership.StateLeaving
	err := p.setLocalLocked(l, p.rev+1, true)
	ml := p.ml
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	timeout := p.cfg.TCPTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	p.logger.Info("gossip.leaving")
	start := time.Now()
	err1 := ml.UpdateNode(timeout)
	err2 := ml.Leave(max(timeout-time.Since(start), time.Millisecond))
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops memberlist (transport first), then the provider's
// goroutines, and closes the event streams. Without Leave first, peers see
// this member die after their detection time. It is idempotent.
func (p *Provider) Shutdown() error {
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		return nil
	}
	p.shutdown = true
	ml := p.ml
	p.mu.Unlock()
	p.cancel()
	var err error
	if ml != nil {
		err = ml.Shutdown()
	}
	p.wg.Wait()
	p.hub.Close()
	p.logger.Info("gossip.shutdown")
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (p *Provider) Stats() Stats {
	c := &p.stats
	return Stats{JoinAttempts: c.joinAttempts.Load(), JoinFailures: c.joinFailures.Load(),
		Refused: c.refused.Load(), BadMessages: c.badMessages.Load(),
		RecordsSent: c.recordsSent.Load(), SendErrors: c.sendErrors.Load()}
}
