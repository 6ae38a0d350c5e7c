package server

import (
	"cmp"
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is how an app runs.
type Kind string

// The app kinds.
const (
	// KindStatic serves files from the bundle.
	KindStatic Kind = "static"
	// KindProcess runs the bundle's executable and proxies to it.
	KindProcess Kind = "process"
	// KindHandler is an http.Handler mounted in-process with Mount.
	KindHandler Kind = "handler"
)

// AppState is the lifecycle state of a deployed app.
type AppState int32

// The app states.
const (
	// AppStarting: deployed, not yet ready (a process app waiting for its health check).
	AppStarting AppState = iota + 1
	// AppRunning: serving.
	AppRunning
	// AppFailed: its process keeps crashing or stopped answering; requests get 503.
	AppFailed
	// AppStopping: being undeployed or replaced.
	AppStopping
)

// String names the state ("unknown" for values out of range).
func (s AppState) String() string {
	switch s {
	case AppStarting:
		return "starting"
	case AppRunning:
		return "running"
	case AppFailed:
		return "failed"
	case AppStopping:
		return "stopping"
	}
	return "unknown"
}

// appRuntime is what serves a deployed app: static files, a supervised process, or an in-process handler.
type appRuntime interface {
	http.Handler
	// ready reports whether the app can serve now.
	ready() bool
	// status describes the runtime for the manager API (nil when there is nothing to say).
	status() any
	// stop releases the runtime; it is called once, after the app left the routing table.
	stop(ctx context.Context) error
}

// App is one deployed webapp: a context path served by one version of one bundle.
type App struct {
	Key        string    // deployment key: "name" or "name##version"
	Name       string    // bundle/app name
	Version    string    // "" when unversioned
	Context    string    // URL path prefix ("/" for ROOT)
	Kind       Kind      // static | process | handler
	Dir        string    // extracted bundle ("" for handlers)
	BundleFile string    // file name the bundle came from ("" for handlers)
	SHA256     string    // of the bundle file
	DeployedAt time.Time //

	rt      appRuntime
	handler http.Handler // rt wrapped by the session layer
	state   atomic.Int32
	seq     uint64 // deployment order, breaks version ties
}

// State returns the app's lifecycle state.
func (a *App) State() AppState {
	st := AppState(a.state.Load())
	if st == AppRunning && !a.rt.ready() {
		return AppStarting
	}
	return st
}

// AppInfo is the manager API's view of an app.
type AppInfo struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Context    string    `json:"context"`
	Key        string    `json:"key"`
	Kind       Kind      `json:"kind"`
	State      string    `json:"state"`
	BundleFile string    `json:"bundle,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	DeployedAt time.Time `json:"deployedAt"`
	Sessions   int       `json:"sessions"`
	Runtime    any       `json:"runtime,omitempty"`
}

func (a *App) info() AppInfo {
	return AppInfo{Name: a.Name, Version: a.Version, Context: a.Context, Key: a.Key, Kind: a.Kind,
		State: a.State().String(), BundleFile: a.BundleFile, SHA256: a.SHA256, DeployedAt: a.DeployedAt,
		Runtime: a.rt.status()}
}

// table is the routing table: context path -> deployed versions, oldest first. Readers take a snapshot
// pointer, writers copy and swap, so a request never waits for a deploy.
type table struct {
	mu   sync.Mutex // serializes writers
	snap atomic.Pointer[tableSnap]
	seq  uint64
}

type tableSnap struct {
	byKey   map[string]*App
	byPath  map[string][]*App // versions sorted oldest..newest
	pathsBy []string          // context paths, longest first
}

func newTable() *table {
	t := &table{}
	t.snap.Store(&tableSnap{byKey: map[string]*App{}, byPath: map[string][]*App{}})
	return t
}

func (t *table) load() *tableSnap { return t.snap.Load() }

// put adds app (replacing one with the same key) and returns the replaced app, if any.
func (t *table) put(app *App) (old *App) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	app.seq = t.seq
	cur := t.load()
	next := &tableSnap{byKey: make(map[string]*App, len(cur.byKey)+1)}
	for k, a := range cur.byKey {
		next.byKey[k] = a
	}
	old = next.byKey[app.Key]
	next.byKey[app.Key] = app
	next.index()
	t.snap.Store(next)
	return old
}

// remove drops the app with key and returns it (nil if absent).
func (t *table) remove(key string) *App {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.load()
	old, ok := cur.byKey[key]
	if !ok {
		return nil
	}
	next := &tableSnap{byKey: make(map[string]*App, len(cur.byKey))}
	for k, a := range cur.byKey {
		if k != key {
			next.byKey[k] = a
		}
	}
	next.index()
	t.snap.Store(next)
	return old
}

func (s *tableSnap) index() {
	s.byPath = map[string][]*App{}
	for _, a := range s.byKey {
		s.byPath[a.Context] = append(s.byPath[a.Context], a)
	}
	s.pathsBy = s.pathsBy[:0]
	for p, apps := range s.byPath {
		sort.Slice(apps, func(i, j int) bool {
			if c := CompareVersions(apps[i].Version, apps[j].Version); c != 0 {
				return c < 0
			}
			return apps[i].seq < apps[j].seq
		})
		s.pathsBy = append(s.pathsBy, p)
	}
	sort.Slice(s.pathsBy, func(i, j int) bool { return len(s.pathsBy[i]) > len(s.pathsBy[j]) })
}

// match returns the versions deployed at the longest context path that prefixes urlPath.
func (s *tableSnap) match(urlPath string) []*App {
	for _, p := range s.pathsBy {
		if contextMatches(p, urlPath) {
			return s.byPath[p]
		}
	}
	return nil
}

// contextMatches reports whether urlPath lies within the context path ctx: equal to it, or below it.
func contextMatches(ctx, urlPath string) bool {
	if ctx == "/" {
		return true
	}
	return urlPath == ctx || (strings.HasPrefix(urlPath, ctx) && urlPath[len(ctx)] == '/')
}

// apps lists every deployed app, by context then version.
func (s *tableSnap) apps() []*App {
	out := make([]*App, 0, len(s.byKey))
	for _, a := range s.byKey {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Context != out[j].Context {
			return out[i].Context < out[j].Context
		}
		return CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out
}

// CompareVersions orders version strings the way people read them: runs of digits compare as numbers
// ("2" < "10"), everything else byte by byte; "" is the oldest. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := splitRun(a, true)
			nb, rb := splitRun(b, true)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return cmp.Compare(len(na), len(nb))
			}
			if na != nb {
				return strings.Compare(na, nb)
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func splitRun(s string, digits bool) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return s[:i], s[i:]
}
