package gossip

import (
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

// maxFulls bounds the full records kept for names that are not (yet) peers.
const maxFulls = 1024

// peer is a remote member as the table tracks it.
type peer struct {
	meta      wire.Record       // last record decoded from memberlist node meta
	view      membership.Member // what consumers see: meta, completed by a full record
	addr      net.IP
	port      uint16
	lastHeard time.Time
}

// table turns memberlist's node notifications and full-record messages into
// membership events. It is a state machine without I/O; the caller
// serializes access and passes the time in.
type table struct {
	self  string
	peers map[string]*peer
	fulls map[string]wire.Record // newest full record per name, for partial metas
}

func newTable(self string) *table {
	return &table{self: self, peers: make(map[string]*peer), fulls: make(map[string]wire.Record)}
}

// alive applies a record seen alive (memberlist join or update).
func (t *table) alive(rec wire.Record, addr net.IP, port uint16, now time.Time) []membership.Event {
	name, inc := rec.Member.Name, rec.Member.Incarnation
	if name == t.self {
		return nil
	}
	cur := t.peers[name]
	if cur != nil && inc < cur.meta.Member.Incarnation {
		return nil // an old incarnation, gossiped late
	}
	var evs []membership.Event
	if cur != nil && inc > cur.meta.Member.Incarnation {
		evs = append(evs, event(membership.EventDead, cur.view, membership.StateDead, cur.lastHeard))
		delete(t.peers, name)
		cur = nil
	}
	if f, ok := t.fulls[name]; ok && f.Member.Incarnation < inc {
		delete(t.fulls, name)
	}
	if rec.Leaving {
		if cur != nil {
			delete(t.peers, name)
			evs = append(evs, event(membership.EventLeave, t.resolve(rec), membership.StateLeaving, now))
		}
		return evs
	}
	view := t.resolve(rec)
	if cur == nil {
		t.peers[name] = &peer{meta: rec, view: view, addr: slices.Clone(addr), port: port, lastHeard: now}
		return append(evs, event(membership.EventJoin, view, membership.StateAlive, now))
	}
	cur.meta, cur.addr, cur.port, cur.lastHeard = rec, slices.Clone(addr), port, now
	if membership.SameRecord(view, cur.view) {
		return evs
	}
	cur.view = view
	return append(evs, event(membership.EventUpdate, view, membership.StateAlive, now))
}

// gone applies memberlist's notice that a member left or died. A graceful
// leave was already reported by alive (the leaving record), so a member
// still present here has failed.
func (t *table) gone(name string) []membership.Event {
	cur := t.peers[name]
	if cur == nil {
		return nil
	}
	delete(t.peers, name)
	delete(t.fulls, name)
	return []membership.Event{event(membership.EventDead, cur.view, membership.StateDead, cur.lastHeard)}
}

// full applies a member's full record received over TCP.
func (t *table) full(rec wire.Record, now time.Time) []membership.Event {
	name, inc := rec.Member.Name, rec.Member.Incarnation
	if name == t.self || rec.Partial {
		return nil
	}
	f, known := t.fulls[name]
	if known && (f.Member.Incarnation > inc || f.Member.Incarnation == inc && f.Rev >= rec.Rev) {
		return nil
	}
	cur := t.peers[name]
	if !known && cur == nil && len(t.fulls) >= maxFulls {
		return nil
	}
	t.fulls[name] = rec
	if cur == nil || cur.meta.Member.Incarnation != inc {
		return nil
	}
	cur.lastHeard = now
	view := t.resolve(cur.meta)
	if membership.SameRecord(view, cur.view) {
		return nil
	}
	cur.view = view
	return []membership.Event{event(membership.EventUpdate, view, membership.StateAlive, now)}
}

// heard notes a direct sign of life (an acked probe).
func (t *table) heard(name string, now time.Time) {
	if p := t.peers[name]; p != nil {
		p.lastHeard = now
	}
}

// resolve completes a partial meta record with the newest full record of
// the same incarnation: the full one if it is at least as new, otherwise the
// meta record with the full record's (older) apps and extras.
func (t *table) resolve(meta wire.Record) membership.Member {
	if !meta.Partial {
		return meta.Member.Clone()
	}
	f, ok := t.fulls[meta.Member.Name]
	if !ok || f.Member.Incarnation != meta.Member.Incarnation {
		return meta.Member.Clone()
	}
	if f.Rev >= meta.Rev {
		return f.Member.Clone()
	}
	m := meta.Member.Clone()
	m.Meta.Apps = slices.Clone(f.Member.Meta.Apps)
	m.Meta.Extra = maps.Clone(f.Member.Meta.Extra)
	return m
}

// present returns the peers sorted by name; one not heard for suspectAfter
// is reported suspect.
func (t *table) present(now time.Time, suspectAfter time.Duration) []membership.Member {
	out := make([]membership.Member, 0, len(t.peers))
	for _, p := range t.peers {
		m := p.view.Clone()
		m.State, m.LastHeard = membership.StateAlive, p.lastHeard
		if now.Sub(p.lastHeard) > suspectAfter {
			m.State = membership.StateSuspect
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b membership.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// addrs returns the gossip addresses ("ip:port") of the present peers.
func (t *table) addrs() map[string]bool {
	out := make(map[string]bool, len(t.peers))
	for _, p := range t.peers {
		out[net.JoinHostPort(p.addr.String(), itoa(int(p.port)))] = true
	}
	return out
}

func event(typ membership.EventType, m membership.Member, s membership.State, heard time.Time) membership.Event {
	m = m.Clone()
	m.State, m.LastHeard = s, heard
	return membership.Event{Type: typ, Member: m}
}
