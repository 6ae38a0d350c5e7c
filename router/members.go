package router

import (
	"context"
	"time"

	"github.com/herdproject/herd/membership"
)

// watch keeps the table in step with membership: it applies events as they come and reconciles with
// a Members() snapshot every ReconcileInterval (events may be dropped by a slow consumer, and a
// leaving node's drain deadline passes without an event). It is the only writer of r.members besides
// Start.
func (r *Router) watch(ctx context.Context, events <-chan membership.Event) {
	ticker := time.NewTicker(r.opts.ReconcileInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil // provider shut down: keep the last view, reconcile on
				continue
			}
			r.applyEvent(ev)
		case <-ticker.C:
			r.reconcile(r.opts.Members.Members())
		}
	}
}

// applyEvent updates the tracked members with one event and swaps in a new table.
func (r *Router) applyEvent(ev membership.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := ev.Member
	switch {
	case m.Role != membership.RoleNode:
		if _, ok := r.members[m.Name]; !ok {
			return // routers are no backends
		}
		delete(r.members, m.Name)
	case ev.Type == membership.EventDead:
		delete(r.members, m.Name)
	default:
		r.upsertLocked(m)
	}
	r.log.Info("membership changed", "event", "router.member_"+ev.Type.String(), "node", m.Name,
		"http", m.HTTPAddr, "state", m.State.String(), "draining", m.Meta.Draining, "apps", len(m.Meta.Apps))
	r.rebuildLocked()
}

// upsertLocked records m; a new incarnation starts afresh (no failure mark, no drain).
func (r *Router) upsertLocked(m membership.Member) {
	e := r.members[m.Name]
	if e == nil || e.m.Incarnation != m.Incarnation {
		e = &memberEntry{}
		r.members[m.Name] = e
	}
	e.m = m.Clone()
	if m.Meta.Draining || m.State == membership.StateLeaving {
		if e.drainSince.IsZero() {
			e.drainSince = r.now()
		}
	} else {
		e.drainSince = time.Time{}
	}
}

// reconcile brings the tracked members in line with a Members() snapshot: members missing from it
// are gone, except leaving ones until their drain deadline.
func (r *Router) reconcile(members []membership.Member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if m.Role != membership.RoleNode || m.HTTPAddr == "" {
			continue
		}
		seen[m.Name] = true
		e := r.members[m.Name]
		if e == nil || !membership.SameRecord(e.m, m) || e.m.State != m.State {
			r.upsertLocked(m)
			changed = true
		}
	}
	drain := r.run.Load().settings.DrainTimeout
	for name, e := range r.members {
		if seen[name] {
			continue
		}
		if e.m.State == membership.StateLeaving && r.now().Sub(e.drainSince) < drain {
			continue
		}
		delete(r.members, name)
		changed = true
	}
	if changed {
		r.rebuildLocked()
	}
}

// rebuildLocked builds a table from the tracked members and static backends and swaps it in. The
// live state of a node run (in-flight count, failure mark, health) carries over.
func (r *Router) rebuildLocked() {
	entries := make([]memberEntry, 0, len(r.members))
	for _, e := range r.members {
		if e.m.HTTPAddr != "" {
			entries = append(entries, *e)
		}
	}
	used := make(map[string]bool, len(entries))
	t := buildTable(entries, r.run.Load().settings.Backends, func(key string, inc uint64) *backendState {
		used[key] = true
		s := r.states[key]
		if s == nil || s.incarnation != inc {
			s = &backendState{incarnation: inc}
			r.states[key] = s
		}
		return s
	})
	for k := range r.states {
		if !used[k] {
			delete(r.states, k)
		}
	}
	old := r.table.Swap(t)
	// A node run that left the table (dead, left, restarted) gets its connections closed: requests
	// still waiting on it fail at once (and are retried elsewhere when allowed) instead of hanging on
	// a silent host until the response header timeout.
	if old != nil {
		keep := make(map[*backendState]bool, len(t.backends))
		for _, b := range t.backends {
			keep[b.state] = true
		}
		for _, b := range old.backends {
			if !keep[b.state] {
				r.run.Load().transport.CloseAddr(b.Addr)
			}
		}
	}
}
