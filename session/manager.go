package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Manager owns the sessions of one node. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu       sync.RWMutex
	sessions map[string]*Session
	tombs    map[string]tomb // recently ended ids, so late deltas cannot resurrect them

	subMu   sync.Mutex // serializes changes to subs
	subs    atomic.Pointer[[]*subscriber]
	fetch   atomic.Pointer[Fetcher]
	running atomic.Bool
}

type subscriber struct{ fn func(Delta) error }

// Fetcher looks for a session this node does not hold (id, with the route
// of the cookie that named it) on the cluster's other members and applies
// it with ApplyRemote; it reports whether it did. See SetFetcher.
type Fetcher func(ctx context.Context, id, route string) bool

// TombstoneTTL is how long a Manager remembers the last version of an ended
// (or re-keyed) session id, so that delayed or duplicated deltas arriving
// afterwards cannot bring it back.
const TombstoneTTL = 5 * time.Minute

type tomb struct {
	version uint64
	until   int64 // unix nanoseconds
}

// Info describes a session for the manager API.
type Info struct {
	ID                 string    `json:"id"`
	App                string    `json:"app"`
	Created            time.Time `json:"created"`
	LastAccess         time.Time `json:"lastAccess"`
	MaxInactiveSeconds int64     `json:"maxInactive"`
	Size               int       `json:"size"`
	Keys               int       `json:"keys"`
	Version            uint64    `json:"version"`
	Replica            bool      `json:"replica"` // received from a peer, not used here since
}

// NewManager validates opts (after filling defaults) and returns a Manager.
// Call Run to expire idle sessions.
func NewManager(opts Options) (*Manager, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Manager{
		opts:     opts,
		log:      opts.Logger.With(slog.String("component", "session")),
		sessions: make(map[string]*Session),
		tombs:    make(map[string]tomb),
	}, nil
}

// Options returns the effective options (defaults filled in).
func (m *Manager) Options() Options { return m.opts }

func (m *Manager) nowNano() int64 { return m.opts.Clock().UnixNano() }

// Run expires idle sessions every SweepInterval until ctx is done, emitting
// a KindExpired Delta for each. It blocks; the caller owns the goroutine.
// A second concurrent Run returns at once.
func (m *Manager) Run(ctx context.Context) {
	if !m.running.CompareAndSwap(false, true) {
		m.log.Warn("session.run.duplicate")
		return
	}
	defer m.running.Store(false)
	t := time.NewTicker(m.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := m.Sweep(); n > 0 {
				m.log.Debug("session.sweep", slog.Int("expired", n))
			}
		}
	}
}

// Sweep expires every session idle longer than its MaxInactive (a replica:
// 10% longer) and returns how many it expired. Run calls it periodically.
func (m *Manager) Sweep() int {
	now := m.nowNano()
	var idle []*Session
	m.mu.Lock()
	for id, t := range m.tombs {
		if t.until < now {
			delete(m.tombs, id)
		}
	}
	for _, s := range m.sessions {
		s.mu.Lock()
		if s.expiredLocked(now) {
			idle = append(idle, s)
		}
		s.mu.Unlock()
	}
	m.mu.Unlock()
	n := 0
	for _, s := range idle {
		// A replica expires silently: the session's owner announces its expiry, and a replica that
		// outlived the owner's announcements has nobody left to tell.
		k := KindExpired
		s.mu.Lock()
		if s.replica {
			k = KindNone
		}
		s.mu.Unlock()
		if m.end(s, k, 0, func(s *Session) bool { return s.expiredLocked(now) }) {
			n++
		}
	}
	return n
}

// Create starts a new session of app with a fresh id. It is not announced
// to subscribers until its first Commit (KindCreated).
func (m *Manager) Create(app string) (*Session, error) {
	if app == "" || len(app) > MaxAppLength {
		return nil, fmt.Errorf("session: create: app name must be 1-%d bytes", MaxAppLength)
	}
	now := m.nowNano()
	s := &Session{
		m: m, app: app, created: now, lastAccess: now, lastSent: now,
		maxInactive: m.opts.MaxInactive, isNew: true,
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		s.id = newID()
		if _, taken := m.sessions[s.id]; !taken {
			break
		}
	}
	m.sessions[s.id] = s
	return s, nil
}

// lookup returns the live session with id, expired or not.
func (m *Manager) lookup(id string) *Session {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sessions[id]
}

// Get returns the live session with id. An expired session is absent (the
// sweeper removes it later). Get does not count as an access.
func (m *Manager) Get(id string) (*Session, bool) {
	s := m.lookup(id)
	if s == nil {
		return nil, false
	}
	now := m.nowNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.expiredLocked(now) {
		return nil, false
	}
	return s, true
}

// access is Get for a session of app, plus an access: LastAccess moves to
// now and the session counts as used locally (no longer a replica).
func (m *Manager) access(id, app string) (*Session, bool) {
	s := m.lookup(id)
	if s == nil || s.app != app {
		return nil, false
	}
	now := m.nowNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.expiredLocked(now) {
		return nil, false
	}
	s.touchLocked(now)
	if s.replica {
		s.replica, s.adopted = false, true
	}
	return s, true
}

// SetFetcher installs fn (nil removes it): when a request names a session
// this node does not hold, the Handler asks fn to bring it from a peer
// before giving up on it (the backup manager after a failover). fn runs in
// the request's goroutine and must bound its own wait.
func (m *Manager) SetFetcher(fn Fetcher) {
	if fn == nil {
		m.fetch.Store(nil)
		return
	}
	m.fetch.Store(&fn)
}

// fetchMissing asks the fetcher for id; it reports whether the session is
// now here.
func (m *Manager) fetchMissing(ctx context.Context, id, route string) bool {
	f := m.fetch.Load()
	if f == nil || m.lookup(id) != nil {
		return false
	}
	return (*f)(ctx, id, route)
}

// Invalidate ends the session with id and emits KindInvalidated (a session
// never committed vanishes silently). It fails with ErrNotFound.
func (m *Manager) Invalidate(id string) error {
	s := m.lookup(id)
	if s == nil || !m.end(s, KindInvalidated, 0, nil) {
		return fmt.Errorf("session: invalidate %q: %w", cut(id), ErrNotFound)
	}
	return nil
}

// discard removes a session never committed, without a trace.
func (m *Manager) discard(s *Session) {
	m.end(s, KindNone, 0, func(s *Session) bool { return s.isNew })
}

// end removes s and emits a Delta of kind k (none for KindNone or a session
// never committed), if cond (when not nil) still holds under the locks. It
// leaves a tombstone with at least version minVersion. It reports whether
// it removed s.
func (m *Manager) end(s *Session, k Kind, minVersion uint64, cond func(*Session) bool) bool {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	now := m.nowNano()
	m.mu.Lock()
	s.mu.Lock()
	if s.gone || (cond != nil && !cond(s)) {
		s.mu.Unlock()
		m.mu.Unlock()
		return false
	}
	if k == KindInvalidated {
		s.version++
	}
	if m.sessions[s.id] == s {
		delete(m.sessions, s.id)
	}
	if !s.isNew {
		m.buryLocked(s.id, max(s.version, minVersion), now)
	}
	m.mu.Unlock()
	s.gone = true
	emit := k != KindNone && !s.isNew
	d := s.metaDeltaLocked(k)
	s.attrs, s.dirty, s.attrBytes = nil, nil, 0
	s.mu.Unlock()
	if emit {
		m.log.Debug("session.end", slog.String("kind", k.String()), slog.String("app", s.app))
		_ = m.emit(d)
	}
	return true
}

// buryLocked records that id ended at version; m.mu must be held.
func (m *Manager) buryLocked(id string, version uint64, now int64) {
	if t, ok := m.tombs[id]; ok && t.version > version {
		version = t.version
	}
	m.tombs[id] = tomb{version: version, until: now + int64(TombstoneTTL)}
}

// ChangeID gives the session with id a fresh id (a defence against session
// fixation, e.g. at login) and emits KindIDChanged with the full state
// (silently for a session never committed). It returns the new id, or
// ErrNotFound.
func (m *Manager) ChangeID(id string) (string, error) {
	s := m.lookup(id)
	if s == nil {
		return "", fmt.Errorf("session: change id of %q: %w", cut(id), ErrNotFound)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	m.mu.Lock()
	s.mu.Lock()
	if s.gone || s.id != id {
		s.mu.Unlock()
		m.mu.Unlock()
		return "", fmt.Errorf("session: change id of %q: %w", cut(id), ErrNotFound)
	}
	nid := newID()
	for m.sessions[nid] != nil {
		nid = newID()
	}
	delete(m.sessions, id)
	m.sessions[nid] = s
	emit := !s.isNew
	if emit {
		m.buryLocked(id, s.version+1, m.nowNano())
	}
	m.mu.Unlock()
	s.id = nid
	var d Delta
	if emit {
		s.version++
		s.lastAccess = max(s.lastAccess, m.nowNano())
		d = s.fullDeltaLocked(KindIDChanged)
		d.OldID = id
		s.dirty, s.metaDirty = nil, false // the full state covers them
		s.lastSent = s.lastAccess
	}
	s.mu.Unlock()
	if emit {
		_ = m.emit(d)
	}
	return nid, nil
}

// Len returns the number of sessions held (local and replicas).
func (m *Manager) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.sessions)
}

// List describes every live session, sorted by id.
func (m *Manager) List() []Info {
	now := m.nowNano()
	out := make([]Info, 0, m.Len())
	for _, s := range m.snapshotSessions() {
		s.mu.Lock()
		if !s.gone && !s.expiredLocked(now) {
			out = append(out, Info{
				ID: s.id, App: s.app, Created: time.Unix(0, s.created), LastAccess: time.Unix(0, s.lastAccess),
				MaxInactiveSeconds: int64(s.maxInactive / time.Second), Size: s.sizeLocked(),
				Keys: len(s.attrs), Version: s.version, Replica: s.replica,
			})
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *Manager) snapshotSessions() []*Session {
	m.mu.RLock()
	defer m.mu.RUnlock()
	all := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	return all
}

// Subscribe registers fn to receive every local change: KindCreated,
// KindChanged and KindTouched from Commit, KindInvalidated from Invalidate,
// KindIDChanged from ChangeID, KindExpired from the sweeper. ApplyRemote
// emits nothing.
//
// Contract: fn runs synchronously in the goroutine that made the change (a
// request's, or the sweeper's), after the change is applied. The deltas of
// one session arrive in version order and never concurrently; deltas of
// different sessions may arrive concurrently. fn should return quickly
// (enqueue and return): while it runs, further changes to the same session
// wait. fn must not commit, invalidate or change the id of the session it
// is told about (that deadlocks); it may call Get, Snapshot and List. The
// Delta's map and slices are shared and read-only. A panic in fn is logged
// and swallowed. cancel removes fn; it is idempotent.
func (m *Manager) Subscribe(fn func(Delta)) (cancel func()) {
	return m.SubscribeSync(func(d Delta) error { fn(d); return nil })
}

// SubscribeSync is Subscribe for a subscriber whose verdict matters: the
// synchronous replicator, which returns only once peers acknowledged the
// change (or its ack timeout ran out) and returns an error when the change
// did not reach them and the request must fail. Session.Commit ignores the
// error; Manager.Handler, which commits before the response header goes
// out, answers 503 instead of the handler's response. The change itself is
// made either way. fn may block for a bounded time; other changes of the
// same session wait meanwhile, which keeps each session's deltas in order.
func (m *Manager) SubscribeSync(fn func(Delta) error) (cancel func()) {
	sub := &subscriber{fn: fn}
	m.subMu.Lock()
	old := m.subs.Load()
	var next []*subscriber
	if old != nil {
		next = append(next, *old...)
	}
	next = append(next, sub)
	m.subs.Store(&next)
	m.subMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.subMu.Lock()
			defer m.subMu.Unlock()
			cur := *m.subs.Load()
			next := make([]*subscriber, 0, len(cur))
			for _, x := range cur {
				if x != sub {
					next = append(next, x)
				}
			}
			m.subs.Store(&next)
		})
	}
}

func (m *Manager) emit(d Delta) error {
	subs := m.subs.Load()
	if subs == nil {
		return nil
	}
	var errs []error
	for _, sub := range *subs {
		if err := m.call(sub, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) call(sub *subscriber, d Delta) (err error) {
	defer func() {
		if x := recover(); x != nil {
			m.log.Error("session.subscriber.panic", slog.Any("panic", x), slog.String("kind", d.Kind.String()))
			err = nil
		}
	}()
	return sub.fn(d)
}
