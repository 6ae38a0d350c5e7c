package farming

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
)

// Channel message types of the farm (the range 0x0200-0x02ff is farming's).
const (
	msgLedgerGet  uint16 = 0x0200 // request: empty body; reply: the whole ledger
	msgLedgerPush uint16 = 0x0201 // request: ledger entries to merge; reply: ack
	msgFetch      uint16 = 0x0202 // request: a bundleRef the sender wants; reply: ack, then a stream
	msgBundle     uint16 = 0x0203 // stream: header bundleRef, payload the bundle file
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("farming: closed")

// Manager runs farming on one member. Create it with New (before the channel starts, so its
// handlers are registered early), Start it, and Close it before shutting the channel down.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	ch      *channel.Channel
	members membership.Provider // nil: a standalone member
	dep     Deployer
	store   *store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	led      *ledger
	watch    map[string]watchRec   // watch dir file name -> what was farmed from it
	pulled   map[string]string     // member -> its digest when last pulled
	wantPull map[string]bool       // members to pull from soon
	pending  map[string]*pending   // sha256 -> fetch waiting for its stream
	failed   map[string]failure    // key -> last deploy failure of this member
	errs     map[string]string     // key or file -> last transient or watch error
	conflict map[string]string     // key -> name that owns its context
	state    int                   // stateNew, stateStarted, stateClosed
	saveErr  error                 //
	farmed   map[string]string     // key -> sha256 farming deployed here
	keep     map[string]int        // sha256 -> drops in progress that stored it (safe from gc)
	openMemo map[string]openRecord // watch goroutine only: bundle.Open results by path

	deployMu  sync.Mutex // serializes deploys and undeploys; taken before mu, never while holding it
	publishMu sync.Mutex // serializes digest publications so the last one is the newest

	kick     chan struct{} // wakes the reconciler
	syncKick chan struct{} // wakes the syncer
	synced   atomic.Bool   // the initial ledger pull is done
	ready    atomic.Bool   // synced and applied once

	xfers transfers

	// sendHook, when set (tests), is called after each chunk a send wrote.
	sendHook atomic.Pointer[func(peer string, sent int64)]
}

const (
	stateNew = iota
	stateStarted
	stateClosed
)

type failure struct {
	SHA256 string
	Err    string
	At     time.Time
}

// New builds a Manager and registers its handlers on ch. members may be nil (no peers: the watch
// directory deploys locally only). The persisted ledger in cfg.TempDir is loaded.
func New(cfg Config, ch *channel.Channel, members membership.Provider, dep Deployer) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if ch == nil {
		return nil, errors.New("farming: channel is nil")
	}
	if dep == nil {
		return nil, errors.New("farming: deployer is nil")
	}
	st, err := newStore(cfg.TempDir, cfg.MaxBundleSize)
	if err != nil {
		return nil, err
	}
	saved, bad, err := loadState(cfg.TempDir, cfg.MaxBundleSize, cfg.MaxEntries)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "farm")
	for _, e := range bad {
		log.Warn("persisted ledger entry dropped", "event", "farm.state_entry_invalid", "err", e)
	}
	led := newLedger()
	led.merge(saved.Entries)
	watch := saved.Watch
	if watch == nil {
		watch = map[string]watchRec{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg: cfg, log: log, ch: ch, members: members, dep: dep, store: st,
		ctx: ctx, cancel: cancel,
		led: led, watch: watch, pulled: map[string]string{}, wantPull: map[string]bool{},
		pending: map[string]*pending{}, failed: map[string]failure{}, errs: map[string]string{},
		conflict: map[string]string{}, farmed: map[string]string{}, keep: map[string]int{}, openMemo: map[string]openRecord{},
		kick: make(chan struct{}, 1), syncKick: make(chan struct{}, 1),
	}
	m.xfers.init()
	ch.Handle(msgLedgerGet, m.handleLedgerGet)
	ch.Handle(msgLedgerPush, m.handleLedgerPush)
	ch.Handle(msgFetch, m.handleFetch)
	ch.HandleStream(msgBundle, m.handleBundleStream)
	return m, nil
}

// Start publishes the ledger digest and starts the watcher, the ledger sync and the reconciler. It
// returns at once; ctx bounds nothing beyond the call (Close stops the Manager).
func (m *Manager) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	switch m.state {
	case stateStarted:
		m.mu.Unlock()
		return errors.New("farming: already started")
	case stateClosed:
		m.mu.Unlock()
		return ErrClosed
	}
	m.state = stateStarted
	m.mu.Unlock()
	m.publishDigest()
	if m.cfg.WatchDir != "" {
		w, err := m.newWatcher()
		if err != nil {
			return err
		}
		m.goFunc(func() {
			if err := w.Run(m.ctx, m.onWatchEvent); err != nil {
				m.log.Error("watch directory stopped", "event", "farm.watch_failed", "dir", m.cfg.WatchDir, "err", err)
			}
		})
	}
	if m.members != nil {
		sub := m.members.Subscribe()
		m.goFunc(func() { m.eventLoop(sub) })
	}
	m.goFunc(m.syncLoop)
	m.goFunc(m.reconcileLoop)
	m.log.Info("farm started", "event", "farm.started", "watch_dir", m.cfg.WatchDir, "entries", m.Stats().Entries,
		"signing_required", m.cfg.Signing.Required)
	return nil
}

// Close stops every goroutine of the Manager, fails transfers it waits for, and saves the ledger.
// Streams the channel is still delivering end when the channel shuts down. It is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.state == stateClosed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.state = stateClosed
	m.cancel()
	for _, p := range m.pending {
		p.finish(ErrClosed)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return m.save()
}

// goFunc runs f on a goroutine Close waits for, unless the Manager is closed.
func (m *Manager) goFunc(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == stateClosed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

func (m *Manager) closed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state == stateClosed
}

// Ready reports whether this member has pulled the cluster's ledger (or found no peer to pull from)
// and applied it once: every bundle it should run is deployed, or was refused for good.
func (m *Manager) Ready() bool { return m.ready.Load() }

// CheckReady is Ready as an error for a readiness probe: nil when ready, else what is awaited.
func (m *Manager) CheckReady() error {
	switch {
	case m.ready.Load():
		return nil
	case !m.synced.Load():
		return errors.New("farm: pulling the cluster's ledger")
	}
	return errors.New("farm: deploying the cluster's bundles")
}

// Ledger returns a copy of the ledger, sorted by key.
func (m *Manager) Ledger() []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.led.list()
	for i := range out {
		out[i].Sig = slices.Clone(out[i].Sig)
	}
	return out
}

// Digest returns the ledger digest this member advertises.
func (m *Manager) Digest() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.led.digest()
}

// save persists the ledger and the watch records.
func (m *Manager) save() error {
	m.mu.Lock()
	st := state{Entries: m.led.list(), Watch: maps.Clone(m.watch)}
	m.mu.Unlock()
	err := saveState(m.cfg.TempDir, st)
	m.mu.Lock()
	m.saveErr = err
	m.mu.Unlock()
	if err != nil {
		m.log.Error("ledger not saved", "event", "farm.save_failed", "err", err)
		return fmt.Errorf("farming: save ledger: %w", err)
	}
	return nil
}

// publishDigest puts the current digest in the local membership record.
func (m *Manager) publishDigest() {
	if m.members == nil {
		return
	}
	m.publishMu.Lock()
	defer m.publishMu.Unlock()
	d := m.Digest()
	err := m.members.UpdateLocal(func(mem *membership.Member) {
		if mem.Meta.Extra == nil {
			mem.Meta.Extra = map[string]string{}
		}
		mem.Meta.Extra[DigestKey] = d
	})
	if err != nil && !errors.Is(err, membership.ErrShutdown) && !errors.Is(err, membership.ErrLeft) {
		m.log.Warn("ledger digest not published", "event", "farm.digest_failed", "err", err)
	}
}

// kickReconcile wakes the reconciler.
func (m *Manager) kickReconcile() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// peers returns the live node members other than this one that have a channel address.
func (m *Manager) peers() []membership.Member {
	if m.members == nil {
		return nil
	}
	var out []membership.Member
	for _, mem := range m.members.Members() {
		if mem.Name == m.cfg.Name || mem.Role != membership.RoleNode || mem.ChannelAddr == "" {
			continue
		}
		if mem.State != membership.StateAlive && mem.State != membership.StateSuspect {
			continue
		}
		out = append(out, mem)
	}
	return out
}

// memberAddr is the channel address of the live member name ("" if unknown).
func (m *Manager) memberAddr(name string) string {
	for _, p := range m.peers() {
		if p.Name == name {
			return p.ChannelAddr
		}
	}
	return ""
}

// changed is called after the ledger changed: it saves it, publishes the digest, pushes local
// changes to the peers and wakes the reconciler.
func (m *Manager) changed(pushed []Entry) {
	_ = m.save()
	m.publishDigest()
	if len(pushed) > 0 {
		m.push(pushed)
	}
	m.kickReconcile()
}

// push sends entries to every live peer, in parallel; failures are repaired by anti-entropy.
func (m *Manager) push(entries []Entry) {
	body, err := encodeEntries(entries)
	if err != nil {
		m.log.Error("ledger push not encoded", "event", "farm.push_failed", "err", err)
		return
	}
	for _, p := range m.peers() {
		m.goFunc(func() {
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			defer cancel()
			if _, err := m.ch.Request(ctx, p.ChannelAddr, channel.Message{Type: msgLedgerPush, Body: body}); err != nil {
				m.log.Debug("ledger push failed", "event", "farm.push_failed", "peer", p.Name, "err", err)
			}
		})
	}
}

// mergeRemote merges entries received from a peer; it reports whether the ledger changed.
func (m *Manager) mergeRemote(from string, entries []Entry) bool {
	m.mu.Lock()
	ch := m.led.merge(entries)
	m.led.trim(m.cfg.MaxEntries)
	m.mu.Unlock()
	if len(ch) == 0 {
		return false
	}
	for _, e := range ch {
		m.log.Info("ledger entry learned", "event", "farm.entry_learned", "from", from, "key", e.Key,
			"sha256", short(e.SHA256), "origin", e.Origin, "stamp", e.Stamp, "deleted", e.Deleted)
	}
	m.changed(nil)
	return true
}

func (m *Manager) handleLedgerGet(_ context.Context, _ string, _ channel.Message) ([]byte, error) {
	if m.closed() {
		return nil, ErrClosed
	}
	m.mu.Lock()
	list := m.led.list()
	m.mu.Unlock()
	return encodeEntries(list)
}

func (m *Manager) handleLedgerPush(_ context.Context, from string, msg channel.Message) ([]byte, error) {
	if m.closed() {
		return nil, ErrClosed
	}
	entries, err := decodeEntries(msg.Body, m.cfg.MaxEntries, m.cfg.MaxBundleSize)
	if err != nil {
		m.log.Warn("ledger push refused", "event", "farm.push_refused", "from", from, "err", err)
		return nil, err
	}
	m.mergeRemote(from, entries)
	return nil, nil
}

// eventLoop watches membership: a member whose digest differs from ours is pulled from.
func (m *Manager) eventLoop(sub *membership.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-m.ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if ev.Type != membership.EventJoin && ev.Type != membership.EventUpdate {
				continue
			}
			d := ev.Member.Meta.Extra[DigestKey]
			if d == "" || d == m.Digest() {
				continue
			}
			m.mu.Lock()
			if m.pulled[ev.Member.Name] != d {
				m.wantPull[ev.Member.Name] = true
			}
			m.mu.Unlock()
			select {
			case m.syncKick <- struct{}{}:
			default:
			}
		}
	}
}

// syncLoop pulls the ledgers the event loop asked for, and every SyncInterval compares every
// peer's digest with ours.
func (m *Manager) syncLoop() {
	tick := time.NewTicker(m.cfg.SyncInterval)
	defer tick.Stop()
	for {
		full := false
		select {
		case <-m.ctx.Done():
			return
		case <-m.syncKick:
		case <-tick.C:
			full = true
		}
		mine := m.Digest()
		m.mu.Lock()
		want := m.wantPull
		m.wantPull = map[string]bool{}
		m.mu.Unlock()
		for _, p := range m.peers() {
			d := p.Meta.Extra[DigestKey]
			if want[p.Name] || (full && d != "" && d != mine) {
				if err := m.pull(p); err != nil {
					m.log.Debug("ledger pull failed", "event", "farm.pull_failed", "peer", p.Name, "err", err)
				}
			}
		}
	}
}

// pull fetches a peer's whole ledger and merges it.
func (m *Manager) pull(p membership.Member) error {
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	reply, err := m.ch.Request(ctx, p.ChannelAddr, channel.Message{Type: msgLedgerGet})
	if err != nil {
		return err
	}
	entries, err := decodeEntries(reply, m.cfg.MaxEntries, m.cfg.MaxBundleSize)
	if err != nil {
		m.log.Warn("ledger from peer refused", "event", "farm.pull_refused", "peer", p.Name, "err", err)
		return err
	}
	m.mu.Lock()
	m.pulled[p.Name] = p.Meta.Extra[DigestKey]
	m.mu.Unlock()
	m.mergeRemote(p.Name, entries)
	return nil
}

// initialSync pulls the ledger from the peers before the first reconcile: until one pull
// succeeded, or no peer showed up within SyncGrace, or SyncTimeout passed.
func (m *Manager) initialSync() {
	start := time.Now()
	for m.ctx.Err() == nil {
		peers := m.peers()
		ok := 0
		for _, p := range peers {
			if err := m.pull(p); err != nil {
				m.log.Debug("initial ledger pull failed", "event", "farm.pull_failed", "peer", p.Name, "err", err)
				continue
			}
			ok++
		}
		switch {
		case ok > 0:
			m.log.Info("ledger synced", "event", "farm.synced", "peers", ok, "took", time.Since(start).Round(time.Millisecond))
			return
		case len(peers) == 0 && time.Since(start) >= m.cfg.SyncGrace:
			m.log.Info("no peer to sync the ledger with", "event", "farm.synced", "peers", 0)
			return
		case time.Since(start) >= m.cfg.SyncTimeout:
			m.log.Warn("ledger sync timed out: applying the local ledger", "event", "farm.sync_timeout", "peers", len(peers))
			return
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
