package multicast

import (
	"slices"
	"strings"
	"time"

	"github.com/herdproject/herd/membership"
)

// verdict says what the roster did with an authenticated packet.
type verdict int

const (
	accepted       verdict = iota
	replayed               // sequence number not newer than the last one seen
	oldIncarnation         // an incarnation older than the one we know
	departed               // from an incarnation that already left
)

// peer is one remote member as the roster tracks it.
type peer struct {
	m       membership.Member // State: alive, leaving or dead; LastHeard
	rev     uint64
	lastSeq uint64
	goneAt  time.Time // zero while the member is present
}

func (p *peer) gone() bool { return !p.goneAt.IsZero() }

// roster is the multicast provider's view of its peers. It is a pure state
// machine: time comes in as arguments and changes come out as events. The
// caller serializes access.
type roster struct {
	suspectAfter time.Duration
	dropAfter    time.Duration
	keepGone     time.Duration // tombstones outlive the replay window
	peers        map[string]*peer
}

func newRoster(suspectAfter, dropAfter, keepGone time.Duration) *roster {
	return &roster{suspectAfter: suspectAfter, dropAfter: dropAfter, keepGone: keepGone,
		peers: make(map[string]*peer)}
}

// observe applies an authenticated, fresh packet from a peer.
func (r *roster) observe(p packet, now time.Time) ([]membership.Event, verdict) {
	m := p.rec.Member
	cur := r.peers[m.Name]
	if cur != nil {
		switch {
		case m.Incarnation < cur.m.Incarnation:
			return nil, oldIncarnation
		case m.Incarnation == cur.m.Incarnation:
			if p.seq <= cur.lastSeq {
				return nil, replayed
			}
			cur.lastSeq = p.seq
			return r.sameIncarnation(cur, p, now)
		}
	}
	// A new member, or a new incarnation of a known one.
	var evs []membership.Event
	if cur != nil && !cur.gone() {
		old := cur.m.Clone()
		old.State = membership.StateDead
		evs = append(evs, membership.Event{Type: membership.EventDead, Member: old})
	}
	np := &peer{m: m.Clone(), rev: p.rec.Rev, lastSeq: p.seq}
	np.m.LastHeard = now
	r.peers[m.Name] = np
	if p.kind == kindLeave {
		np.m.State = membership.StateLeaving
		np.goneAt = now
		return evs, accepted
	}
	np.m.State = membership.StateAlive
	return append(evs, membership.Event{Type: membership.EventJoin, Member: np.m.Clone()}), accepted
}

func (r *roster) sameIncarnation(cur *peer, p packet, now time.Time) ([]membership.Event, verdict) {
	if cur.gone() && cur.m.State == membership.StateLeaving {
		return nil, departed
	}
	if p.kind == kindLeave {
		cur.m.State = membership.StateLeaving
		cur.m.LastHeard = now
		cur.goneAt = now
		return []membership.Event{{Type: membership.EventLeave, Member: cur.m.Clone()}}, accepted
	}
	cur.m.LastHeard = now
	if cur.gone() { // declared dead, but it was only silent: it is back
		cur.goneAt = time.Time{}
		cur.m = p.rec.Member.Clone()
		cur.m.State, cur.m.LastHeard, cur.rev = membership.StateAlive, now, p.rec.Rev
		return []membership.Event{{Type: membership.EventJoin, Member: cur.m.Clone()}}, accepted
	}
	if p.rec.Rev == cur.rev {
		return nil, accepted
	}
	cur.m = p.rec.Member.Clone()
	cur.m.State, cur.m.LastHeard, cur.rev = membership.StateAlive, now, p.rec.Rev
	return []membership.Event{{Type: membership.EventUpdate, Member: cur.m.Clone()}}, accepted
}

// reap declares silent members dead and forgets old tombstones.
func (r *roster) reap(now time.Time) []membership.Event {
	var evs []membership.Event
	for name, p := range r.peers {
		switch {
		case p.gone():
			if now.Sub(p.goneAt) > r.keepGone {
				delete(r.peers, name)
			}
		case now.Sub(p.m.LastHeard) > r.dropAfter:
			p.m.State = membership.StateDead
			p.goneAt = now
			evs = append(evs, membership.Event{Type: membership.EventDead, Member: p.m.Clone()})
		}
	}
	slices.SortFunc(evs, func(a, b membership.Event) int { return strings.Compare(a.Member.Name, b.Member.Name) })
	return evs
}

// present returns the members not gone, sorted by name, with State alive
// or suspect by how long ago they were heard.
func (r *roster) present(now time.Time) []membership.Member {
	var out []membership.Member
	for _, p := range r.peers {
		if p.gone() {
			continue
		}
		m := p.m.Clone()
		if now.Sub(m.LastHeard) > r.suspectAfter {
			m.State = membership.StateSuspect
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b membership.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}
