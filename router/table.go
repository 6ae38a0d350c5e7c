package router

import (
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/membership"
)

// status is a backend's standing in the table.
type status int8

const (
	statusAlive    status = iota // takes new sessions
	statusSuspect                // overdue heartbeats: sticky only
	statusDraining               // Meta.Draining: sticky only, until the drain deadline
	statusLeaving                // left the cluster: sticky only, until the drain deadline
)

// String returns the status name for logs.
func (s status) String() string {
	switch s {
	case statusAlive:
		return "alive"
	case statusSuspect:
		return "suspect"
	case statusDraining:
		return "draining"
	case statusLeaving:
		return "leaving"
	}
	return "unknown"
}

// Backend is one node as one Table snapshot sees it. Its fields never change; the live counters
// (requests in flight, failure mark, health) are shared by every snapshot of the same node run.
type Backend struct {
	// Name is the member name, or the address for a static backend.
	Name string
	// Route is the session route ("" for a static backend until a cookie taught it).
	Route string
	// Addr is the node's HTTP address (host:port).
	Addr string
	// Static is true for a backend from Settings.Backends that membership does not know.
	Static bool
	// Apps are the apps the member serves (nil for a static backend: it is tried for every path).
	Apps []membership.App

	status     status
	drainSince time.Time
	state      *backendState
}

// Inflight is the number of requests (and upgraded connections) the router has open on b.
func (b *Backend) Inflight() int64 { return b.state.inflight.Load() }

// Draining reports whether b takes no new sessions because it drains or leaves.
func (b *Backend) Draining() bool { return b.status == statusDraining || b.status == statusLeaving }

// String returns the name.
func (b *Backend) String() string { return b.Name }

// backendState is what the router knows about one run of a node beyond its record.
type backendState struct {
	inflight    atomic.Int64
	failedUntil atomic.Int64 // Unix nanoseconds; a failure mark lasts until then
	unhealthy   atomic.Bool  // the last active health check failed
	checks      atomic.Int64 // active health checks done
	route       atomic.Pointer[string]
	incarnation uint64
}

// failed reports whether a failure mark is active at now.
func (s *backendState) failed(now time.Time) bool { return s.failedUntil.Load() > now.UnixNano() }

// learntRoute is the route a static backend's cookies revealed, or "".
func (s *backendState) learntRoute() string {
	if p := s.route.Load(); p != nil {
		return *p
	}
	return ""
}

// memberEntry is one node member as the router tracks it.
type memberEntry struct {
	m          membership.Member
	drainSince time.Time // when it began to drain or leave; zero when it does neither
}

// ctxRoutes are the backends serving one context path.
type ctxRoutes struct {
	path     string
	backends []*Backend
	versions [][]string // per backend: versions served at path; nil: any (static)
	all      []string   // distinct versions, newest first
}

// multi reports whether several versions of the app are deployed (parallel deployment).
func (c *ctxRoutes) multi() bool { return len(c.all) > 1 }

// serves reports whether backend i serves version v ("" matches anything).
func (c *ctxRoutes) serves(i int, v string) bool {
	return v == "" || c.versions[i] == nil || slices.Contains(c.versions[i], v)
}

// newest is the newest version backend i serves at this path ("" for static backends).
func (c *ctxRoutes) newest(b *Backend) string {
	for i, x := range c.backends {
		if x == b && len(c.versions[i]) > 0 {
			return c.versions[i][0]
		}
	}
	return ""
}

// Table is an immutable snapshot of the routing table.
type Table struct {
	backends  []*Backend
	byName    map[string]*Backend
	byRoute   map[string]*Backend
	byAddr    map[string]*Backend
	contexts  map[string]*ctxRoutes
	anyPath   *ctxRoutes // static backends only, for paths no member serves; nil without statics
	nodeNames []string   // member nodes in the cluster view (not leaving), for placement
}

// Backends lists the table's backends by name.
func (t *Table) Backends() []*Backend { return slices.Clone(t.backends) }

// lookup finds a backend by name, route or address.
func (t *Table) lookup(key string) *Backend {
	if b := t.byName[key]; b != nil {
		return b
	}
	if b := t.byRoute[key]; b != nil {
		return b
	}
	return t.byAddr[key]
}

// match returns the backends for the longest context path that contains urlPath, or the static
// backends when no member serves it, or nil.
func (t *Table) match(urlPath string) *ctxRoutes {
	if urlPath == "" || urlPath[0] != '/' {
		urlPath = "/" + urlPath
	}
	p := urlPath
	for {
		if c := t.contexts[p]; c != nil {
			return c
		}
		if p == "/" {
			return t.anyPath
		}
		if i := strings.LastIndexByte(p, '/'); i > 0 {
			p = p[:i]
		} else {
			p = "/"
		}
	}
}

// buildTable makes a snapshot from the tracked members and the static addresses. state returns the
// shared state of a backend key for a node run (incarnation).
func buildTable(members []memberEntry, statics []string, state func(key string, inc uint64) *backendState) *Table {
	t := &Table{byName: map[string]*Backend{}, byRoute: map[string]*Backend{}, byAddr: map[string]*Backend{},
		contexts: map[string]*ctxRoutes{}}
	for _, e := range members {
		m := e.m
		b := &Backend{Name: m.Name, Route: m.Route, Addr: m.HTTPAddr, Apps: slices.Clone(m.Meta.Apps),
			status: memberStatus(e), drainSince: e.drainSince, state: state(m.Name, m.Incarnation)}
		t.add(b)
		if b.status != statusLeaving {
			t.nodeNames = append(t.nodeNames, m.Name)
		}
	}
	var staticBackends []*Backend
	for _, addr := range statics {
		if t.byAddr[addr] != nil {
			continue // membership knows this node: its record wins
		}
		st := state("static:"+addr, 0)
		b := &Backend{Name: addr, Route: st.learntRoute(), Addr: addr, Static: true, state: st}
		t.add(b)
		staticBackends = append(staticBackends, b)
	}
	sort.Slice(t.backends, func(i, j int) bool { return t.backends[i].Name < t.backends[j].Name })
	for _, b := range t.backends {
		for _, a := range b.Apps {
			c := t.contexts[a.Context]
			if c == nil {
				c = &ctxRoutes{path: a.Context}
				t.contexts[a.Context] = c
			}
			i := slices.Index(c.backends, b)
			if i < 0 {
				c.backends = append(c.backends, b)
				c.versions = append(c.versions, nil)
				i = len(c.backends) - 1
			}
			c.versions[i] = insertVersion(c.versions[i], a.Version)
			c.all = insertVersion(c.all, a.Version)
		}
	}
	for _, c := range t.contexts {
		for _, b := range staticBackends {
			c.backends = append(c.backends, b)
			c.versions = append(c.versions, nil)
		}
	}
	if len(staticBackends) > 0 {
		t.anyPath = &ctxRoutes{path: "/", backends: staticBackends, versions: make([][]string, len(staticBackends))}
	}
	slices.Sort(t.nodeNames)
	return t
}

func (t *Table) add(b *Backend) {
	t.backends = append(t.backends, b)
	if _, dup := t.byName[b.Name]; !dup {
		t.byName[b.Name] = b
	}
	if b.Route != "" {
		if old := t.byRoute[b.Route]; old == nil || old.Static {
			t.byRoute[b.Route] = b
		}
	}
	if b.Addr != "" {
		if _, dup := t.byAddr[b.Addr]; !dup {
			t.byAddr[b.Addr] = b
		}
	}
}

func memberStatus(e memberEntry) status {
	switch {
	case e.m.State == membership.StateLeaving:
		return statusLeaving
	case e.m.Meta.Draining:
		return statusDraining
	case e.m.State == membership.StateSuspect:
		return statusSuspect
	}
	return statusAlive
}

// insertVersion adds v to a list kept newest first, once.
func insertVersion(list []string, v string) []string {
	for i, x := range list {
		switch c := compareVersions(v, x); {
		case c == 0:
			return list
		case c > 0:
			return slices.Insert(list, i, v)
		}
	}
	return append(list, v)
}

// compareVersions orders versions as people read them: digit runs compare as numbers ("2" < "10"),
// other bytes one by one, "" is the oldest. It agrees with the node's choice of the newest version.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return sign(len(na) - len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return sign(int(a[0]) - int(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return sign(len(a) - len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
