package session

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/herdproject/herd/session/wire"
)

// Session is one HTTP session. Its accessors are safe for concurrent use.
// Attribute values are opaque bytes the node never interprets; Get returns
// a copy and Set stores one.
//
// Changes are tracked between commits: Commit (called by Manager.Handler
// after each request) turns them into one Delta for the Manager's
// subscribers and bumps Version.
type Session struct {
	m   *Manager
	app string

	// commitMu orders everything that emits a Delta for this session
	// (commit, touch, invalidate, expire, change of id) and every change of
	// id or liveness. Lock order: commitMu, then Manager.mu, then mu.
	commitMu sync.Mutex

	mu          sync.Mutex
	id          string
	version     uint64
	created     int64 // unix nanoseconds
	lastAccess  int64
	lastSent    int64 // LastAccess last announced to subscribers
	maxInactive time.Duration
	attrs       map[string][]byte
	attrBytes   int             // encoded size of the entries, without the map header
	dirty       map[string]bool // key -> set (true) or deleted (false); nil when clean
	metaDirty   bool            // MaxInactive changed
	isNew       bool            // not committed yet: subscribers have not heard of it
	replica     bool            // created by ApplyRemote and not used locally since
	adopted     bool            // a replica this node just started serving: the next commit sends it whole
	gone        bool            // invalidated, expired or discarded
}

// ID returns the session id (without the route).
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// App returns the deployment key the session belongs to (e.g. "shop##2").
func (s *Session) App() string { return s.app }

// Version returns the number of committed changes (0 before the first
// commit).
func (s *Session) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Created returns the creation time.
func (s *Session) Created() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Unix(0, s.created)
}

// LastAccess returns the time of the last request that used the session.
func (s *Session) LastAccess() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Unix(0, s.lastAccess)
}

// MaxInactive returns the idle time after which the session expires.
func (s *Session) MaxInactive() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInactive
}

// SetMaxInactive changes the session's idle timeout (d must be positive).
// The change is replicated at the next commit.
func (s *Session) SetMaxInactive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("session: max inactive (%s) must be positive", d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return ErrInvalidated
	}
	if s.maxInactive != d {
		s.maxInactive, s.metaDirty = d, true
	}
	return nil
}

// IsNew reports whether the session has not been committed yet (it was
// created during the current request).
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isNew
}

// Valid reports whether the session is live (not invalidated or expired).
func (s *Session) Valid() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.gone
}

// Dirty reports whether the session has uncommitted changes.
func (s *Session) Dirty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isNew || len(s.dirty) > 0 || s.metaDirty
}

// Get returns a copy of the value of key.
func (s *Session) Get(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.attrs[key]
	if !ok {
		return nil, false
	}
	return bytes.Clone(v), true
}

// Set stores a copy of value under key. It fails with ErrInvalidKey for an
// empty or non-UTF-8 key, a *TooLargeError (ErrTooLarge) when the session
// would exceed Options.MaxSize, and ErrInvalidated on a dead session.
func (s *Session) Set(key string, value []byte) error {
	return s.update(map[string][]byte{key: value}, nil, key)
}

// Delete removes key (a no-op when absent).
func (s *Session) Delete(key string) {
	_ = s.update(nil, []string{key}, key)
}

// Update applies deletions, then sets, as one change: either all of it
// applies or, on error, none of it.
func (s *Session) Update(set map[string][]byte, del []string) error {
	return s.update(set, del, "")
}

func (s *Session) update(set map[string][]byte, del []string, errKey string) error {
	for k := range set {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return ErrInvalidated
	}
	newBytes := s.attrBytes
	newLen := len(s.attrs)
	for _, k := range del {
		if _, ok := set[k]; ok {
			continue
		}
		if old, ok := s.attrs[k]; ok {
			newBytes -= entrySize(k, old)
			newLen--
		}
	}
	for k, v := range set {
		if old, ok := s.attrs[k]; ok {
			newBytes -= entrySize(k, old)
			newLen--
		}
		newBytes += entrySize(k, v)
		newLen++
	}
	if size := mapHeaderSize(newLen) + newBytes; size > s.m.opts.MaxSize && size > s.sizeLocked() {
		return &TooLargeError{Key: errKey, Size: size, Limit: s.m.opts.MaxSize}
	}
	for _, k := range del {
		if _, ok := set[k]; ok {
			continue
		}
		if _, ok := s.attrs[k]; ok {
			delete(s.attrs, k)
			s.markLocked(k, false)
		}
	}
	for k, v := range set {
		if old, ok := s.attrs[k]; ok && bytes.Equal(old, v) {
			continue
		}
		if s.attrs == nil {
			s.attrs = make(map[string][]byte, 1)
		}
		s.attrs[k] = bytes.Clone(v)
		if s.attrs[k] == nil {
			s.attrs[k] = []byte{}
		}
		s.markLocked(k, true)
	}
	s.attrBytes = newBytes
	return nil
}

// replacePrefix makes the attributes whose keys start with prefix equal to
// attrs (whose keys must all start with prefix) as one change.
func (s *Session) replacePrefix(prefix string, attrs map[string][]byte) error {
	s.mu.Lock()
	var del []string
	for k := range s.attrs {
		if _, keep := attrs[k]; !keep && strings.HasPrefix(k, prefix) {
			del = append(del, k)
		}
	}
	s.mu.Unlock()
	return s.update(attrs, del, "")
}

func (s *Session) markLocked(key string, set bool) {
	if s.dirty == nil {
		s.dirty = make(map[string]bool, 1)
	}
	s.dirty[key] = set
}

func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("session: empty key: %w", ErrInvalidKey)
	}
	if !utf8.ValidString(k) {
		return fmt.Errorf("session: key %q is not valid UTF-8: %w", k, ErrInvalidKey)
	}
	return nil
}

// Keys returns the attribute keys, sorted.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.attrs))
	for k := range s.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Len returns the number of attributes.
func (s *Session) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attrs)
}

// Size returns the size in bytes of the attributes encoded as a msgpack map
// of str keys to bin values, the measure Options.MaxSize limits.
func (s *Session) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sizeLocked()
}

func (s *Session) sizeLocked() int { return mapHeaderSize(len(s.attrs)) + s.attrBytes }

// Attrs returns a copy of all attributes.
func (s *Session) Attrs() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.attrs))
	for k, v := range s.attrs {
		out[k] = bytes.Clone(v)
	}
	return out
}

// View returns the session as the header protocol passes it to a process
// app; New is IsNew.
func (s *Session) View() wire.SessionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	attrs := make(map[string][]byte, len(s.attrs))
	for k, v := range s.attrs {
		attrs[k] = v // encoded right away by the caller; not retained
	}
	return wire.SessionView{
		ID:          s.id,
		New:         s.isNew,
		Created:     time.Unix(0, s.created),
		LastAccess:  time.Unix(0, s.lastAccess),
		MaxInactive: s.maxInactive,
		Attrs:       attrs,
	}
}

// Commit ends a unit of work on the session (Manager.Handler calls it after
// each request) and returns the Kind of the Delta it emitted, or KindNone:
//
//   - the first commit of a new session emits KindCreated (full state);
//   - otherwise, if attributes or MaxInactive changed since the last commit,
//     it bumps Version and emits KindChanged with the changed keys;
//   - otherwise it records an access (LastAccess = now) and emits
//     KindTouched only when LastAccess moved by more than a tenth of
//     MaxInactive since last announced, so that read-only requests do not
//     each produce a message.
//
// A replica that this node starts to serve (a failover) is adopted: its
// next commit bumps Version and emits KindChanged with the full state, so
// every peer learns the new owner and a peer that lacked it gets it whole.
//
// Subscribers run synchronously, before Commit returns.
func (s *Session) Commit() Kind {
	k, _ := s.commit()
	return k
}

// commit is Commit that also returns what SubscribeSync subscribers
// reported (the change is made either way).
func (s *Session) commit() (Kind, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	now := s.m.nowNano()
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return KindNone, nil
	}
	s.lastAccess = max(s.lastAccess, now)
	var d Delta
	switch {
	case s.isNew:
		s.isNew = false
		s.version++
		d = s.fullDeltaLocked(KindCreated)
	case s.adopted:
		s.version++
		d = s.fullDeltaLocked(KindChanged)
	case len(s.dirty) > 0 || s.metaDirty:
		s.version++
		d = s.changedDeltaLocked()
	case time.Duration(s.lastAccess-s.lastSent) > s.maxInactive/10:
		d = s.metaDeltaLocked(KindTouched)
	default:
		s.mu.Unlock()
		return KindNone, nil
	}
	s.dirty, s.metaDirty, s.adopted = nil, false, false
	s.lastSent = s.lastAccess
	s.mu.Unlock()
	return d.Kind, s.m.emit(d)
}

// touchLocked records an access at now without emitting anything.
func (s *Session) touchLocked(now int64) {
	s.lastAccess = max(s.lastAccess, now)
}

// expiredLocked reports whether the session has been idle too long at now.
// A replica gets a tenth of MaxInactive more, since the owner announces
// accesses only that often.
func (s *Session) expiredLocked(now int64) bool {
	limit := s.maxInactive
	if s.replica {
		limit += s.maxInactive / 10
	}
	return time.Duration(now-s.lastAccess) > limit
}

func (s *Session) metaDeltaLocked(k Kind) Delta {
	return Delta{
		ID:          s.id,
		App:         s.app,
		Kind:        k,
		Version:     s.version,
		Created:     time.Unix(0, s.created),
		LastAccess:  time.Unix(0, s.lastAccess),
		MaxInactive: s.maxInactive,
	}
}

// fullDeltaLocked returns the whole state. Set shares the stored value
// slices, which are never modified in place.
func (s *Session) fullDeltaLocked(k Kind) Delta {
	d := s.metaDeltaLocked(k)
	d.Full = true
	d.Set = make(map[string][]byte, len(s.attrs))
	for key, v := range s.attrs {
		d.Set[key] = v
	}
	return d
}

func (s *Session) changedDeltaLocked() Delta {
	d := s.metaDeltaLocked(KindChanged)
	for key, set := range s.dirty {
		if v, ok := s.attrs[key]; set && ok {
			if d.Set == nil {
				d.Set = make(map[string][]byte, len(s.dirty))
			}
			d.Set[key] = v
		} else if !ok {
			d.Deleted = append(d.Deleted, key)
		}
	}
	sort.Strings(d.Deleted)
	return d
}

// entrySize is the msgpack size of one str key and its bin value.
func entrySize(k string, v []byte) int {
	return strHeaderSize(len(k)) + len(k) + binHeaderSize(len(v)) + len(v)
}

func strHeaderSize(n int) int {
	switch {
	case n < 32:
		return 1
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

func binHeaderSize(n int) int {
	switch {
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

func mapHeaderSize(n int) int {
	switch {
	case n < 16:
		return 1
	case n < 1<<16:
		return 3
	}
	return 5
}
