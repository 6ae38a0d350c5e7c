package router

import (
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/placement"
)

// Selector picks the node for one attempt of a request, or nil when it has none to offer. Select
// is called once per attempt (nodes already tried are excluded by the Pool) and must be safe for
// concurrent use. A Selector that cannot decide passes the request on to its Next selector.
type Selector interface {
	Select(p *Pool, r *http.Request) *Backend
}

// Compile-time guards: every selector of the chain implements Selector.
var (
	_ Selector = Pinned{}
	_ Selector = Sticky{}
	_ Selector = ReplicaHolder{}
	_ Selector = (*RoundRobin)(nil)
	_ Selector = (*LeastConnections)(nil)
	_ Selector = LastResort{}
)

// maxTried bounds the nodes one request may try (Settings.MaxAttempts is at most this).
const maxTried = 16

// Pool is one request's view of the routing table: what a Selector chooses from.
type Pool struct {
	// SessionID and Route come from the request's session cookie ("" without a valid one).
	SessionID, Route string
	// Version is the app version the session was created on, when the router saw it happen.
	Version string
	// Pin is the value of the pin header ("" when absent).
	Pin string

	table  *Table
	routes *ctxRoutes // nil: nothing serves the path
	now    time.Time
	drain  time.Duration
	tried  [maxTried]*Backend
	ntried int
}

// Table is the snapshot the request is routed on.
func (p *Pool) Table() *Table { return p.table }

// Candidates are the backends serving the request's path (members, then static backends).
func (p *Pool) Candidates() []*Backend {
	if p.routes == nil {
		return nil
	}
	return slices.Clone(p.routes.backends)
}

// Usable reports whether b may take this attempt: not tried yet, healthy, no failure mark, and alive
// (or, for sticky requests, also suspect, draining or leaving until the drain deadline).
func (p *Pool) Usable(b *Backend, sticky bool) bool {
	if b == nil || p.wasTried(b) || b.state.unhealthy.Load() || b.state.failed(p.now) {
		return false
	}
	switch b.status {
	case statusAlive:
		return true
	case statusSuspect:
		return sticky
	}
	return sticky && p.now.Sub(b.drainSince) < p.drain
}

func (p *Pool) wasTried(b *Backend) bool {
	for _, t := range p.tried[:p.ntried] {
		if t == b {
			return true
		}
	}
	return false
}

func (p *Pool) markTried(b *Backend) {
	if p.ntried < maxTried {
		p.tried[p.ntried] = b
		p.ntried++
	}
}

// index is b's position among the path's backends, or -1 when it does not serve the path.
func (p *Pool) index(b *Backend) int {
	if p.routes == nil || b == nil {
		return -1
	}
	for i, x := range p.routes.backends {
		if x == b {
			return i
		}
	}
	return -1
}

// targetVersion is the version new sessions go to: the session's own when known and served by a
// usable node, else the newest version a usable node serves ("" when only one version exists).
func (p *Pool) targetVersion() string {
	c := p.routes
	if !c.multi() {
		return ""
	}
	has := func(v string) bool {
		for i, b := range c.backends {
			if c.versions[i] != nil && slices.Contains(c.versions[i], v) && p.Usable(b, false) {
				return true
			}
		}
		return false
	}
	if p.Version != "" && has(p.Version) {
		return p.Version
	}
	for _, v := range c.all {
		if has(v) {
			return v
		}
	}
	return ""
}

func next(s Selector, p *Pool, r *http.Request) *Backend {
	if s == nil {
		return nil
	}
	return s.Select(p, r)
}

// Pinned honours the pin header: the named node (by name, route or address) whatever its state, or
// nothing once it has been tried. Requests without the header go to Next.
type Pinned struct{ Next Selector }

// Select implements Selector.
func (s Pinned) Select(p *Pool, r *http.Request) *Backend {
	if p.Pin == "" {
		return next(s.Next, p, r)
	}
	if b := p.table.lookup(p.Pin); b != nil && !p.wasTried(b) {
		return b
	}
	return nil
}

// Sticky sends a request whose session cookie names a route to the node with that route, while the
// node is usable for sticky requests and serves the path; otherwise Next decides.
type Sticky struct{ Next Selector }

// Select implements Selector.
func (s Sticky) Select(p *Pool, r *http.Request) *Backend {
	if p.Route != "" {
		if b := p.table.byRoute[p.Route]; p.index(b) >= 0 && p.Usable(b, true) {
			return b
		}
	}
	return next(s.Next, p, r)
}

// ReplicaHolder fails a session over to a node holding its replica. With Backups > 0 (the backup
// manager) those are placement.Owners(id, nodes, ...) computed over the cluster's nodes as the nodes
// compute it, skipping the sticky node; with Backups == 0 (the delta manager: every node holds every
// session) it defers to Next.
type ReplicaHolder struct {
	Backups int
	Next    Selector
}

// Select implements Selector.
func (s ReplicaHolder) Select(p *Pool, r *http.Request) *Backend {
	if s.Backups <= 0 || p.SessionID == "" || p.routes == nil {
		return next(s.Next, p, r)
	}
	// One extra owner covers both placements: primary among the owners, or the creator as
	// primary with backups chosen among the others (rendezvous order is the same either way).
	for _, name := range placement.Owners(p.SessionID, p.table.nodeNames, s.Backups+2) {
		b := p.table.byName[name]
		if b == nil || (p.Route != "" && b.Route == p.Route) {
			continue
		}
		if i := p.index(b); i >= 0 && p.routes.serves(i, p.Version) && p.Usable(b, false) {
			return b
		}
	}
	return next(s.Next, p, r)
}

// RoundRobin spreads new sessions over the usable nodes of the target version in turn.
type RoundRobin struct {
	Next    Selector
	counter atomic.Uint64
}

// Select implements Selector.
func (s *RoundRobin) Select(p *Pool, r *http.Request) *Backend {
	c := p.routes
	if c == nil || len(c.backends) == 0 {
		return next(s.Next, p, r)
	}
	v := p.targetVersion()
	n := len(c.backends)
	start := int(s.counter.Add(1) % uint64(n))
	for k := range n {
		i := (start + k) % n
		if b := c.backends[i]; c.serves(i, v) && p.Usable(b, false) {
			return b
		}
	}
	return next(s.Next, p, r)
}

// LeastConnections sends new sessions to the usable node of the target version with the fewest
// requests in flight; ties rotate.
type LeastConnections struct {
	Next    Selector
	counter atomic.Uint64
}

// Select implements Selector.
func (s *LeastConnections) Select(p *Pool, r *http.Request) *Backend {
	c := p.routes
	if c == nil || len(c.backends) == 0 {
		return next(s.Next, p, r)
	}
	v := p.targetVersion()
	n := len(c.backends)
	start := int(s.counter.Add(1) % uint64(n))
	var best *Backend
	var bestLoad int64
	for k := range n {
		i := (start + k) % n
		b := c.backends[i]
		if !c.serves(i, v) || !p.Usable(b, false) {
			continue
		}
		if load := b.Inflight(); best == nil || load < bestLoad {
			best, bestLoad = b, load
		}
	}
	if best != nil {
		return best
	}
	return next(s.Next, p, r)
}

// LastResort is the end of the chain: when no node is usable, any node serving the path that this
// request has not tried yet, ignoring failure marks, health and drain (marks may be stale; a dead
// node fails fast at dial and the next one is tried). The session's version is preferred.
type LastResort struct{}

// Select implements Selector.
func (LastResort) Select(p *Pool, _ *http.Request) *Backend {
	c := p.routes
	if c == nil {
		return nil
	}
	var fallback *Backend
	for i, b := range c.backends {
		if p.wasTried(b) {
			continue
		}
		if c.serves(i, p.Version) {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}

// newChain builds the selector chain for settings s.
func newChain(s Settings, o Options) Selector {
	var policy Selector
	if s.Policy == PolicyLeastConnections {
		policy = &LeastConnections{Next: LastResort{}}
	} else {
		policy = &RoundRobin{Next: LastResort{}}
	}
	backups := 0
	if o.Replication == ReplicationBackup {
		backups = o.Backups
	}
	return Pinned{Next: Sticky{Next: ReplicaHolder{Backups: backups, Next: policy}}}
}
