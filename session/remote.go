package session

import (
	"fmt"
	"sort"
)

// ApplyRemote applies a Delta received from a peer. It is idempotent and
// never rolls back: a delta whose Version is not newer than the local copy
// is ignored (a duplicate or a stale message), except KindTouched and
// KindExpired, which do not bump versions:
//
//   - KindCreated, KindChanged: creates the session if absent (as a
//     replica) or applies the change; with Full set, Set replaces all
//     attributes. When the delta is partial and versions are missing before
//     it (or the session was unknown and this is not its first version), it
//     still applies it and returns an error wrapping ErrGap: ask the sender
//     for a Snapshot.
//   - KindTouched: moves LastAccess forward on a known session.
//   - KindInvalidated: removes the session if the delta is newer.
//   - KindExpired: removes the session unless it changed or was accessed
//     here after the sender last saw it.
//   - KindIDChanged: re-keys the session from OldID to ID (creating it from
//     the full state if OldID is unknown).
//
// Ended and re-keyed ids are remembered for TombstoneTTL with their last
// version, so a late or duplicated delta does not resurrect them.
//
// ApplyRemote emits nothing to subscribers, enforces no size limit, and
// keeps d.Set's slices: do not modify them afterwards. A malformed delta is
// a *DeltaError (ErrInvalidDelta).
func (m *Manager) ApplyRemote(d Delta) error {
	if err := d.Validate(); err != nil {
		return err
	}
	switch d.Kind {
	case KindTouched:
		if s := m.lookup(d.ID); s != nil {
			at := d.LastAccess.UnixNano()
			s.mu.Lock()
			if !s.gone {
				s.lastAccess = max(s.lastAccess, at)
				s.lastSent = max(s.lastSent, at)
			}
			s.mu.Unlock()
		}
		return nil
	case KindInvalidated:
		if s := m.lookup(d.ID); s != nil {
			m.end(s, KindNone, d.Version, func(s *Session) bool { return d.Version > s.version })
		}
		return nil
	case KindExpired:
		if s := m.lookup(d.ID); s != nil {
			at := d.LastAccess.UnixNano()
			m.end(s, KindNone, d.Version, func(s *Session) bool { return d.Version >= s.version && s.lastAccess <= at })
		}
		return nil
	case KindIDChanged:
		if old := m.lookup(d.OldID); old != nil && m.rekeyRemote(old, d) {
			return nil
		}
	}
	return m.applyState(d)
}

// applyState applies a KindCreated, KindChanged or KindIDChanged delta to
// the session d.ID, creating it if absent.
func (m *Manager) applyState(d Delta) error {
	for {
		s := m.lookup(d.ID)
		if s == nil {
			s = m.replicaFrom(d)
			m.mu.Lock()
			if m.sessions[d.ID] != nil { // lost a race: apply to the winner
				m.mu.Unlock()
				continue
			}
			if t, ok := m.tombs[d.ID]; ok && d.Version <= t.version {
				m.mu.Unlock()
				return nil // a late delta of a session that ended here
			}
			m.sessions[d.ID] = s
			m.mu.Unlock()
			if !d.Full && d.Version > 1 {
				return fmt.Errorf("session: apply %s v%d of unknown session: %w", d.Kind, d.Version, ErrGap)
			}
			return nil
		}
		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			return nil
		}
		defer s.mu.Unlock()
		if d.Version <= s.version {
			return nil
		}
		gap := !d.Full && d.Version > s.version+1
		from := s.version
		s.applyLocked(d)
		if gap {
			return fmt.Errorf("session: apply %s v%d on v%d: %w", d.Kind, d.Version, from, ErrGap)
		}
		return nil
	}
}

// rekeyRemote moves old to d.ID and applies d's full state, if d is newer.
// It reports whether it handled d (false: old vanished or was re-keyed
// meanwhile; treat d as a plain state).
func (m *Manager) rekeyRemote(old *Session, d Delta) bool {
	old.commitMu.Lock()
	defer old.commitMu.Unlock()
	m.mu.Lock()
	old.mu.Lock()
	defer old.mu.Unlock()
	if old.gone || old.id != d.OldID {
		m.mu.Unlock()
		return false
	}
	if d.Version <= old.version {
		m.mu.Unlock()
		return true // stale or duplicate
	}
	delete(m.sessions, d.OldID)
	m.buryLocked(d.OldID, d.Version, m.nowNano())
	if other := m.sessions[d.ID]; other != nil && other != old {
		other.mu.Lock()
		other.gone = true
		other.mu.Unlock()
	}
	m.sessions[d.ID] = old
	m.mu.Unlock()
	old.id = d.ID
	old.applyLocked(d)
	return true
}

// replicaFrom builds a replica session from d.
func (m *Manager) replicaFrom(d Delta) *Session {
	s := &Session{m: m, app: d.App, id: d.ID, replica: true}
	s.applyLocked(d)
	return s
}

// applyLocked applies d (already checked to be newer) to s.
func (s *Session) applyLocked(d Delta) {
	if d.Full {
		s.attrs, s.attrBytes = make(map[string][]byte, len(d.Set)), 0
	}
	for _, k := range d.Deleted {
		if v, ok := s.attrs[k]; ok {
			s.attrBytes -= entrySize(k, v)
			delete(s.attrs, k)
		}
	}
	for k, v := range d.Set {
		if old, ok := s.attrs[k]; ok {
			s.attrBytes -= entrySize(k, old)
		}
		if s.attrs == nil {
			s.attrs = make(map[string][]byte, len(d.Set))
		}
		s.attrs[k] = v
		s.attrBytes += entrySize(k, v)
	}
	s.version = d.Version
	if !d.Created.IsZero() {
		s.created = d.Created.UnixNano()
	}
	s.lastAccess = max(s.lastAccess, d.LastAccess.UnixNano())
	s.lastSent = max(s.lastSent, s.lastAccess)
	s.maxInactive = d.MaxInactive
	s.replica = true
}

// Snapshot returns the full state of the session with id as a KindChanged
// Delta with Full set, for state transfer; false if there is no such live,
// committed session.
func (m *Manager) Snapshot(id string) (Delta, bool) {
	s := m.lookup(id)
	if s == nil {
		return Delta{}, false
	}
	now := m.nowNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.isNew || s.expiredLocked(now) {
		return Delta{}, false
	}
	return s.fullDeltaLocked(KindChanged), true
}

// All returns Snapshot of every live, committed session, sorted by id: the
// state a joining peer needs.
func (m *Manager) All() []Delta {
	now := m.nowNano()
	var out []Delta
	for _, s := range m.snapshotSessions() {
		s.mu.Lock()
		if !s.gone && !s.isNew && !s.expiredLocked(now) {
			out = append(out, s.fullDeltaLocked(KindChanged))
		}
		s.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// EachSnapshot calls fn with the Snapshot of every live, committed session,
// one at a time and in no particular order, until fn returns false. Unlike
// All it never holds more than one snapshot, so a state transfer of many
// sessions streams in constant memory. fn runs without any session lock
// held and may call the Manager.
func (m *Manager) EachSnapshot(fn func(Delta) bool) {
	now := m.nowNano()
	for _, s := range m.snapshotSessions() {
		s.mu.Lock()
		ok := !s.gone && !s.isNew && !s.expiredLocked(now)
		var d Delta
		if ok {
			d = s.fullDeltaLocked(KindChanged)
		}
		s.mu.Unlock()
		if ok && !fn(d) {
			return
		}
	}
}
