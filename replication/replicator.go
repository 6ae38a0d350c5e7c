package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/placement"
	"github.com/herdproject/herd/session"
)

// Replication modes (config cluster.replication.mode).
const (
	// ModeAsync answers at once; changes queue per peer.
	ModeAsync = "async"
	// ModeSync answers once every target peer acknowledged, one message at a time per peer.
	ModeSync = "sync"
	// ModePooled is sync with up to PoolSize messages in flight per peer.
	ModePooled = "pooled"
)

// Session managers (config cluster.replication.manager).
const (
	// ManagerDelta: every node holds every session (Tomcat's DeltaManager).
	ManagerDelta = "delta"
	// ManagerBackup: a primary plus Backups copies chosen by rendezvous hashing (BackupManager).
	ManagerBackup = "backup"
)

// Ack policies (config cluster.replication.ackPolicy).
const (
	// PolicyRespond logs and counts a change that was not acknowledged in time, and answers normally.
	PolicyRespond = "respond"
	// PolicyFail answers 503 when a change was not acknowledged in time.
	PolicyFail = "fail"
)

// ErrNotReplicated is the verdict on a change that some target peer did not acknowledge within the
// ack timeout, under PolicyFail.
var ErrNotReplicated = errors.New("replication: change not acknowledged by every peer")

// Members is what the replicator needs of membership (membership.Provider has it).
type Members interface {
	Members() []membership.Member
	Subscribe() *membership.Subscription
}

// Config configures a Replicator.
type Config struct {
	// Name is the local member's name (its route).
	Name string
	// Sessions is the node's session manager.
	Sessions *session.Manager
	// Channel is the cluster channel, shared with farming; the replicator registers its message types
	// in New, so create it before the channel starts.
	Channel *channel.Channel
	// Addr is the channel address peers reach this node at (as in its membership record); it is sent
	// in state-transfer requests. Default: Channel.Addr() at Start.
	Addr string
	// Manager is ManagerDelta (default) or ManagerBackup.
	Manager string
	// Backups is the number of copies besides the primary with ManagerBackup (default 1).
	Backups int
	// Mode is ModeAsync, ModeSync or ModePooled (default). See SetMode.
	Mode string
	// PoolSize is how many messages may be in flight to one peer in pooled mode (default 8). The
	// channel's own pool size should be at least this.
	PoolSize int
	// AckTimeout bounds the wait for acknowledgements in sync and pooled modes (default 2s).
	AckTimeout time.Duration
	// AckPolicy is PolicyRespond (default) or PolicyFail.
	AckPolicy string
	// QueueSize bounds each peer's queue of changes waiting to be sent (default 10000). A change that
	// finds it full is counted and logged, and its session is sent whole once there is room.
	QueueSize int
	// BatchSize is the most queued changes sent in one message (default 256).
	BatchSize int
	// Linger is how long a peer's sender waits for more queued changes before it sends a batch that
	// is not full (default 1ms; negative: never wait). Queued changes are the async mode's, touches,
	// expiries and rebalancing: requests never wait for it.
	Linger time.Duration
	// TransferTimeout bounds a state transfer from one peer (default 30s).
	TransferTimeout time.Duration
	// DiscoveryWait is how long a starting node waits to see a first peer before it concludes it is
	// alone and has nothing to pull (default 1s).
	DiscoveryWait time.Duration
	// FetchTimeout bounds fetching a missing session for a request (default AckTimeout).
	FetchTimeout time.Duration
	// Logger receives structured events (nil discards).
	Logger *slog.Logger
	// Metrics, when set, receives the replicator's Prometheus instruments.
	Metrics prometheus.Registerer
}

func (c *Config) fill() error {
	if c.Name == "" {
		return errors.New("replication: Config.Name is empty")
	}
	if c.Sessions == nil || c.Channel == nil {
		return errors.New("replication: Config.Sessions and Config.Channel are required")
	}
	if c.Manager == "" {
		c.Manager = ManagerDelta
	}
	if c.Manager != ManagerDelta && c.Manager != ManagerBackup {
		return fmt.Errorf("replication: Config.Manager %q: want delta or backup", c.Manager)
	}
	if c.Backups == 0 {
		c.Backups = 1
	}
	if c.Backups < 1 {
		return fmt.Errorf("replication: Config.Backups %d: want at least 1", c.Backups)
	}
	if c.Mode == "" {
		c.Mode = ModePooled
	}
	if c.AckPolicy == "" {
		c.AckPolicy = PolicyRespond
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 2 * time.Second
	}
	if err := checkSettings(c.Mode, c.AckTimeout, c.AckPolicy); err != nil {
		return err
	}
	if c.PoolSize == 0 {
		c.PoolSize = 8
	}
	if c.PoolSize < 1 || c.PoolSize > channel.MaxPoolSize {
		return fmt.Errorf("replication: Config.PoolSize %d: want 1..%d", c.PoolSize, channel.MaxPoolSize)
	}
	if c.QueueSize == 0 {
		c.QueueSize = 10000
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("replication: Config.QueueSize %d: want at least 1", c.QueueSize)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	c.BatchSize = min(c.BatchSize, MaxBatch)
	if c.Linger == 0 {
		c.Linger = time.Millisecond
	}
	if c.TransferTimeout <= 0 {
		c.TransferTimeout = 30 * time.Second
	}
	if c.DiscoveryWait <= 0 {
		c.DiscoveryWait = time.Second
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = c.AckTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func checkSettings(mode string, ackTimeout time.Duration, policy string) error {
	switch mode {
	case ModeAsync, ModeSync, ModePooled:
	default:
		return fmt.Errorf("replication: mode %q: want async, sync or pooled", mode)
	}
	if ackTimeout <= 0 {
		return fmt.Errorf("replication: ack timeout %s: must be positive", ackTimeout)
	}
	if policy != PolicyRespond && policy != PolicyFail {
		return fmt.Errorf("replication: ack policy %q: want respond or fail", policy)
	}
	return nil
}

// settings are the parts that change at run time (SetMode).
type settings struct {
	mode       string
	ackTimeout time.Duration
	policy     string
}

// view is the replicator's picture of the cluster, rebuilt on each membership change.
type view struct {
	peers  []*peer          // live peers (nodes with a channel address), by name
	byName map[string]*peer // the same, by name
	others []string         // their names: placement candidates besides this node
	live   []string         // others plus this node, sorted
}

// Replicator replicates a node's sessions to its peers and keeps the replicas they send. Create it
// with New before the channel starts, call Start once membership runs, Close at shutdown.
type Replicator struct {
	cfg      Config
	log      *slog.Logger
	settings atomic.Pointer[settings]
	view     atomic.Pointer[view]

	viewMu sync.Mutex // serializes view changes and rebalancing

	ownersMu sync.Mutex
	owners   map[string]string // backup manager: replica id -> the member that sent it (its primary)

	pendingMu sync.Mutex
	pending   map[string]*pendingTransfer
	pulledAt  sync.Map // peer name -> time.Time of the last resync pull started from it

	ready    atomic.Bool
	transfer atomic.Pointer[TransferStats]
	fetchSem chan struct{}

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started atomic.Bool
	goMu    sync.Mutex // orders goFunc's wg.Add before Close's wg.Wait
	closed  atomic.Bool
	unsub   func()

	c       counters
	latency *prometheus.HistogramVec
}

// counters are the replicator's totals (see Stats).
type counters struct {
	syncWaits, syncFailures, applied, applyErrors, badMessages, gaps  atomic.Uint64
	fetches, fetchHits, adopted, rebalanced, transfersServed, resyncs atomic.Uint64
	syncNanos                                                         atomic.Uint64
}

// New checks cfg and registers the replicator's message types on cfg.Channel. Nothing is sent before
// Start.
func New(cfg Config) (*Replicator, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	r := &Replicator{cfg: cfg, log: cfg.Logger.With("component", "replication"),
		owners: map[string]string{}, pending: map[string]*pendingTransfer{}, fetchSem: make(chan struct{}, 16)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.settings.Store(&settings{mode: cfg.Mode, ackTimeout: cfg.AckTimeout, policy: cfg.AckPolicy})
	r.view.Store(&view{byName: map[string]*peer{}, live: []string{cfg.Name}})
	r.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herd_replication_ack_seconds",
		Help:    "Time a request waited for its change to be acknowledged by every target peer, by mode.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"mode"})
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(r.latency); err != nil {
			return nil, fmt.Errorf("replication: metrics: %w", err)
		}
		if err := cfg.Metrics.Register(collector{r}); err != nil {
			return nil, fmt.Errorf("replication: metrics: %w", err)
		}
	}
	ch := cfg.Channel
	ch.HandleTransient(TypeDeltas, r.handleDeltas) // decodeBatch copies what it keeps
	ch.Handle(TypeFetch, r.handleFetch)
	ch.Handle(TypeTransfer, r.handleTransfer)
	ch.HandleStream(TypeTransferData, r.handleTransferData)
	ch.Handle(TypeResync, r.handleResync)
	return r, nil
}

// Start begins replicating: it follows membership, replicates every local session change, answers
// peers, and pulls the sessions this node must hold from its peers (state transfer) in the
// background; Ready reports when that is done. It returns at once.
func (r *Replicator) Start(members Members) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("replication: already started")
	}
	if r.cfg.Addr == "" {
		r.cfg.Addr = r.cfg.Channel.Addr()
	}
	sub := members.Subscribe()
	r.updateView(members.Members())
	cancelSub := r.cfg.Sessions.SubscribeSync(r.onDelta)
	r.cfg.Sessions.SetFetcher(r.fetch)
	r.unsub = func() {
		cancelSub()
		r.cfg.Sessions.SetFetcher(nil)
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-r.ctx.Done():
				return
			case _, ok := <-sub.C():
				if !ok {
					return
				}
				r.updateView(members.Members())
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		r.initialTransfer()
	}()
	r.log.Info("replication started", "event", "replication.started", "manager", r.cfg.Manager,
		"mode", r.settings.Load().mode, "backups", r.cfg.Backups)
	return nil
}

// Ready reports whether the start-up state transfer is over (nil), or why not.
func (r *Replicator) Ready() error {
	if r.ready.Load() {
		return nil
	}
	return errors.New("replication: pulling sessions from peers (state transfer)")
}

// SetMode changes the mode, ack timeout and ack policy of a running replicator (config reload).
// Changes being sent finish under the old settings.
func (r *Replicator) SetMode(mode string, ackTimeout time.Duration, policy string) error {
	if err := checkSettings(mode, ackTimeout, policy); err != nil {
		return err
	}
	old := r.settings.Swap(&settings{mode: mode, ackTimeout: ackTimeout, policy: policy})
	if old.mode != mode || old.ackTimeout != ackTimeout || old.policy != policy {
		r.log.Info("replication settings changed", "event", "replication.mode", "mode", mode,
			"ackTimeout", ackTimeout, "ackPolicy", policy)
	}
	return nil
}

// Mode returns the current mode.
func (r *Replicator) Mode() string { return r.settings.Load().mode }

// Close stops replicating. Changes still queued are given until ctx ends to reach their peers.
func (r *Replicator) Close(ctx context.Context) error {
	r.goMu.Lock()
	already := r.closed.Swap(true)
	r.goMu.Unlock()
	if already {
		return nil
	}
	if r.unsub != nil {
		r.unsub()
	}
	for _, p := range r.view.Load().peers {
		p.drain(ctx)
	}
	r.cancel()
	r.wg.Wait()
	return nil
}

// updateView rebuilds the peer set from the membership view: peers that joined get a sender, peers
// that are gone lose theirs (and their queue). The backup manager then restores its copies.
func (r *Replicator) updateView(members []membership.Member) {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	old := r.view.Load()
	next := &view{byName: map[string]*peer{}}
	for _, m := range members {
		if m.Role != membership.RoleNode || m.Name == r.cfg.Name || m.ChannelAddr == "" {
			continue
		}
		if m.State != membership.StateAlive && m.State != membership.StateSuspect {
			continue
		}
		p := old.byName[m.Name]
		if p == nil || p.addr != m.ChannelAddr || p.incarnation != m.Incarnation {
			p = r.newPeer(m)
		}
		next.byName[m.Name] = p
		next.peers = append(next.peers, p)
		next.others = append(next.others, m.Name)
	}
	slices.SortFunc(next.peers, func(a, b *peer) int { return strings.Compare(a.name, b.name) })
	slices.Sort(next.others)
	next.live = append(slices.Clone(next.others), r.cfg.Name)
	slices.Sort(next.live)
	r.view.Store(next)
	for name, p := range old.byName {
		if next.byName[name] != p {
			p.stop()
			r.log.Info("replication peer gone", "event", "replication.peer_gone", "peer", name)
		}
	}
	for name, p := range next.byName {
		if old.byName[name] != p {
			r.log.Info("replication peer", "event", "replication.peer", "peer", name, "addr", p.addr)
			if r.ready.Load() {
				r.resyncFrom(p, next.live)
			}
		}
	}
	if r.cfg.Manager == ManagerBackup && !slices.Equal(old.live, next.live) {
		r.rebalance(old, next)
	}
}

// resyncFrom pulls from a peer that appeared after start-up what this node must hold of its sessions.
// For a node that just started that is nothing, but a member coming back from a network partition
// holds the changes made on its side while it was cut off, and a restarted member may hold sessions
// that failed over to it. Versions decide, so nothing newer here is rolled back; both sides pull.
func (r *Replicator) resyncFrom(p *peer, live []string) {
	r.goFunc(func() {
		// The other side may not have noticed anything (a short partition seen from one side only):
		// ask it to pull from here too.
		if _, err := r.cfg.Channel.Request(r.ctx, p.addr, channel.Message{Type: TypeResync}); err != nil && r.ctx.Err() == nil {
			r.log.Debug("resync request not delivered", "event", "replication.resync_ask_error", "peer", p.name, "err", err)
		}
		res := r.pull(p, live)
		r.pulledAt.Store(p.name, time.Now())
		if res.err != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("resync from a returning peer failed", "event", "replication.resync_error", "peer", p.name, "err", res.err)
			}
			return
		}
		r.c.resyncs.Add(1)
		if res.sessions > 0 {
			r.log.Info("sessions pulled from a returning peer", "event", "replication.resynced", "peer", p.name,
				"sessions", res.sessions)
		}
	})
}

// goFunc runs f on a goroutine Close waits for, unless the replicator is closing (false).
func (r *Replicator) goFunc(f func()) bool {
	r.goMu.Lock()
	defer r.goMu.Unlock()
	if r.closed.Load() {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// handleResync answers a peer that saw this node (re)appear: pull from it, unless this node is still
// in its start-up transfer or pulled from it a moment ago.
func (r *Replicator) handleResync(_ context.Context, from string, _ channel.Message) ([]byte, error) {
	if !r.ready.Load() || r.closed.Load() {
		return nil, nil
	}
	if at, ok := r.pulledAt.Load(from); ok && time.Since(at.(time.Time)) < 5*time.Second {
		return nil, nil
	}
	v := r.view.Load()
	if p := v.byName[from]; p != nil {
		r.pulledAt.Store(from, time.Now())
		r.goFunc(func() {
			if res := r.pull(p, v.live); res.err == nil {
				r.c.resyncs.Add(1)
				if res.sessions > 0 {
					r.log.Info("sessions pulled from a peer that saw this node return", "event", "replication.resynced",
						"peer", p.name, "sessions", res.sessions)
				}
			}
		})
	}
	return nil, nil
}

// targets returns the peers that must receive d.
func (r *Replicator) targets(v *view, d session.Delta) []*peer {
	if r.cfg.Manager == ManagerDelta || len(v.peers) == 0 {
		return v.peers
	}
	names := placement.Owners(d.ID, v.others, r.cfg.Backups)
	if d.Kind == session.KindIDChanged { // the old id's holders re-key their copy too
		for _, n := range placement.Owners(d.OldID, v.others, r.cfg.Backups) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	out := make([]*peer, 0, len(names))
	for _, n := range names {
		if p := v.byName[n]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// onDelta replicates one local change (the session manager's synchronous subscriber).
func (r *Replicator) onDelta(d session.Delta) error {
	if r.closed.Load() {
		return nil
	}
	if r.cfg.Manager == ManagerBackup {
		r.ownersMu.Lock()
		delete(r.owners, d.ID) // a local change: this node is the session's primary now
		if d.OldID != "" {
			delete(r.owners, d.OldID)
		}
		r.ownersMu.Unlock()
	}
	v := r.view.Load()
	targets := r.targets(v, d)
	if len(targets) == 0 {
		return nil
	}
	enc, err := session.MarshalDelta(d)
	if err != nil {
		r.log.Error("session change not encoded", "event", "replication.encode_error", "err", err)
		return nil
	}
	st := r.settings.Load()
	if st.mode == ModeAsync || d.Kind == session.KindTouched || d.Kind == session.KindExpired {
		now := time.Now().UnixNano()
		for _, p := range targets {
			p.enqueue(item{id: d.ID, enc: enc, at: now})
		}
		return nil
	}
	return r.replicateSync(st, targets, d.ID, enc)
}

// replicateSync sends one change to every target in parallel and waits for their acks.
func (r *Replicator) replicateSync(st *settings, targets []*peer, id string, enc []byte) error {
	ctx, cancel := context.WithTimeout(r.ctx, st.ackTimeout)
	defer cancel()
	start := time.Now()
	errs := make([]error, len(targets))
	calls := make([]syncCall, len(targets))
	var one []byte // the message of this change alone, encoded once for every peer it leads to
	for i, p := range targets {
		calls[i] = p.startSync(ctx, st.mode, id, enc, &one)
	}
	// The messages this request leads first, and the batches that formed behind them, before the
	// batches it joined: those may be led by a request that waits, in turn, for this one's.
	for i, p := range targets {
		if calls[i].lead {
			errs[i] = p.awaitSync(ctx, calls[i])
		}
	}
	for i, p := range targets {
		if calls[i].lead {
			p.leadQueued()
		}
	}
	for i, p := range targets {
		if !calls[i].lead {
			errs[i] = p.awaitSync(ctx, calls[i])
		}
	}
	took := time.Since(start)
	r.latency.WithLabelValues(st.mode).Observe(took.Seconds())
	r.c.syncWaits.Add(1)
	r.c.syncNanos.Add(uint64(took))
	var failed []string
	var first error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, targets[i].name)
			targets[i].markResync(id) // it gets the whole session once reachable again
			if first == nil {
				first = err
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	r.c.syncFailures.Add(1)
	r.log.Warn("session change not acknowledged", "event", "replication.ack_failed", "peers", failed,
		"mode", st.mode, "policy", st.policy, "err", first)
	if st.policy == PolicyFail {
		return fmt.Errorf("%w: %d of %d peers (%v): %w", ErrNotReplicated, len(failed), len(targets), failed, first)
	}
	return nil
}

// handleDeltas applies a batch of changes from a peer.
func (r *Replicator) handleDeltas(_ context.Context, from string, msg channel.Message) ([]byte, error) {
	ds, err := decodeBatch(msg.Body)
	if err != nil {
		r.c.badMessages.Add(1)
		r.log.Warn("bad replication message", "event", "replication.bad_message", "peer", from, "err", err)
		return nil, err
	}
	var need []string
	for _, d := range ds {
		r.noteRemote(from, d)
		if err := r.cfg.Sessions.ApplyRemote(d); err != nil {
			if errors.Is(err, session.ErrGap) {
				r.c.gaps.Add(1)
				need = append(need, d.ID)
				continue
			}
			r.c.applyErrors.Add(1)
			r.log.Warn("replicated change refused", "event", "replication.apply_error", "peer", from, "err", err)
			continue
		}
		r.c.applied.Add(1)
	}
	if len(need) == 0 {
		return nil, nil
	}
	return channel.Encode(&ack{Need: need})
}

// noteRemote records which member a replica came from (its primary), for the backup manager.
func (r *Replicator) noteRemote(from string, d session.Delta) {
	if r.cfg.Manager != ManagerBackup {
		return
	}
	r.ownersMu.Lock()
	defer r.ownersMu.Unlock()
	switch d.Kind {
	case session.KindInvalidated, session.KindExpired:
		delete(r.owners, d.ID)
	case session.KindCreated, session.KindChanged, session.KindIDChanged:
		if d.OldID != "" {
			delete(r.owners, d.OldID)
		}
		r.owners[d.ID] = from
	}
}

// handleFetch answers a peer that lacks a session: its full state, or an empty batch.
func (r *Replicator) handleFetch(_ context.Context, from string, msg channel.Message) ([]byte, error) {
	var req fetchRequest
	if err := decode(msg.Body, &req); err != nil {
		r.c.badMessages.Add(1)
		return nil, err
	}
	if !session.ValidID(req.ID) {
		r.c.badMessages.Add(1)
		return nil, fmt.Errorf("%w: fetch of an invalid session id", ErrFrame)
	}
	return encodeBatch(r.wholeStates([]string{req.ID})), nil
}

// fetch brings a session this node lacks from the member named by the cookie's route, else from the
// members placement says hold a copy (session.Fetcher).
func (r *Replicator) fetch(ctx context.Context, id, route string) bool {
	select {
	case r.fetchSem <- struct{}{}: // bounded: forged ids must not turn into a storm of peer requests
		defer func() { <-r.fetchSem }()
	default:
		return false
	}
	if r.closed.Load() {
		return false
	}
	v := r.view.Load()
	var candidates []*peer
	if p := v.byName[route]; p != nil {
		candidates = append(candidates, p)
	}
	var names []string
	if r.cfg.Manager == ManagerBackup {
		names = placement.Owners(id, v.others, r.cfg.Backups+1)
	} else {
		names = v.others
	}
	for _, n := range names {
		if p := v.byName[n]; p != nil && n != route && len(candidates) < 3 {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return false
	}
	r.c.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
	defer cancel()
	body, err := channel.Encode(&fetchRequest{ID: id})
	if err != nil {
		return false
	}
	for _, p := range candidates {
		reply, err := r.cfg.Channel.Request(ctx, p.addr, channel.Message{Type: TypeFetch, Body: body})
		if err != nil {
			r.log.Debug("session fetch failed", "event", "replication.fetch_error", "peer", p.name, "err", err)
			continue
		}
		ds, err := decodeBatch(reply)
		if err != nil || len(ds) != 1 || ds[0].ID != id {
			continue
		}
		r.noteRemote(p.name, ds[0])
		if err := r.cfg.Sessions.ApplyRemote(ds[0]); err != nil && !errors.Is(err, session.ErrGap) {
			continue
		}
		r.c.fetchHits.Add(1)
		r.log.Info("session fetched from a peer", "event", "replication.fetched", "peer", p.name)
		return true
	}
	return false
}

// rebalance restores the backup manager's copies after a membership change: the primary sends each
// of its sessions whole to the backups it did not have before, and the sessions whose primary is gone
// are adopted by the first of their backups (in placement order), which sends them to its own
// backups. Both go through the peers' queues, not the requests' path.
func (r *Replicator) rebalance(old, next *view) {
	liveSet := make(map[string]bool, len(next.live))
	for _, n := range next.live {
		liveSet[n] = true
	}
	sent := 0
	r.cfg.Sessions.EachSnapshot(func(d session.Delta) bool {
		prev := old.others
		r.ownersMu.Lock()
		owner, replica := r.owners[d.ID]
		if replica && !liveSet[owner] {
			if top := placement.Owners(d.ID, next.live, 1); len(top) == 1 && top[0] == r.cfg.Name {
				delete(r.owners, d.ID) // this node is the custodian now
				replica = false
				r.c.adopted.Add(1)
				prev = nil // every backup of the new primary gets it
			}
		}
		r.ownersMu.Unlock()
		if replica {
			return true // its primary takes care of it
		}
		was := placement.Owners(d.ID, prev, r.cfg.Backups)
		var enc []byte
		for _, n := range placement.Owners(d.ID, next.others, r.cfg.Backups) {
			p := next.byName[n]
			if p == nil || slices.Contains(was, n) {
				continue
			}
			if enc == nil {
				var err error
				if enc, err = session.MarshalDelta(d); err != nil {
					return true
				}
			}
			p.enqueue(item{id: d.ID, enc: enc, at: time.Now().UnixNano()})
			sent++
		}
		return true
	})
	if sent > 0 {
		r.c.rebalanced.Add(uint64(sent))
		r.log.Info("backup copies restored", "event", "replication.rebalanced", "copies", sent, "members", len(next.live))
	}
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
