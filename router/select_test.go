package router

import (
	"net/http"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/placement"
)

// testTable builds a table of nodes node1..nodeN serving /app (version "") plus extra entries.
func testTable(t *testing.T, entries ...memberEntry) *Table {
	t.Helper()
	states := map[string]*backendState{}
	return buildTable(entries, nil, func(key string, inc uint64) *backendState {
		if states[key] == nil {
			states[key] = &backendState{incarnation: inc}
		}
		return states[key]
	})
}

func entry(name string, apps ...membership.App) memberEntry {
	if len(apps) == 0 {
		apps = []membership.App{{Name: "app", Context: "/app"}}
	}
	return memberEntry{m: membership.Member{Name: name, Route: name, HTTPAddr: name + ":80", State: membership.StateAlive,
		Meta: membership.Meta{Apps: apps}}}
}

func pool(tb *Table, path, route string, now time.Time) *Pool {
	return &Pool{table: tb, routes: tb.match(path), Route: route, SessionID: map[bool]string{true: "sess-1"}[route != ""],
		now: now, drain: 10 * time.Second}
}

func TestSelectionChain(t *testing.T) {
	now := time.Unix(1000, 0)
	chain := newChain(DefaultSettings(), Options{Replication: ReplicationDelta})
	req := &http.Request{}
	draining := entry("node2")
	draining.m.Meta.Draining = true
	draining.drainSince = now.Add(-5 * time.Second)
	suspect := entry("node3")
	suspect.m.State = membership.StateSuspect
	tb := testTable(t, entry("node1"), draining, suspect, entry("node4"))

	for _, tc := range []struct {
		name, route string
		setup       func()
		at          time.Time
		want        []string // acceptable answers
	}{
		{name: "sticky alive", route: "node1", want: []string{"node1"}},
		{name: "sticky draining within the drain timeout", route: "node2", want: []string{"node2"}},
		{name: "sticky draining after the drain timeout", route: "node2", at: now.Add(6 * time.Second), want: []string{"node1", "node4"}},
		{name: "sticky suspect", route: "node3", want: []string{"node3"}},
		{name: "unknown route", route: "gone", want: []string{"node1", "node4"}},
		{name: "new session avoids draining and suspect", want: []string{"node1", "node4"}},
		{name: "sticky node marked failed", route: "node1", setup: func() {
			tb.byName["node1"].state.failedUntil.Store(now.Add(time.Second).UnixNano())
		}, want: []string{"node4"}},
		{name: "failure mark expired", route: "node1", at: now.Add(2 * time.Second), want: []string{"node1"}},
		{name: "unhealthy sticky node", route: "node4", setup: func() {
			tb.byName["node1"].state.failedUntil.Store(0)
			tb.byName["node4"].state.unhealthy.Store(true)
		}, want: []string{"node1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			at := tc.at
			if at.IsZero() {
				at = now
			}
			for i := 0; i < 4; i++ {
				b := chain.Select(pool(tb, "/app/x", tc.route, at), req)
				if b == nil || !contains(tc.want, b.Name) {
					t.Fatalf("selected %v, want one of %v", b, tc.want)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLastResortAndExhaustion(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := testTable(t, entry("node1"), entry("node2"))
	for _, b := range tb.backends {
		b.state.failedUntil.Store(now.Add(time.Hour).UnixNano())
	}
	chain := newChain(DefaultSettings(), Options{})
	p := pool(tb, "/app", "", now)
	seen := map[string]bool{}
	for {
		b := chain.Select(p, &http.Request{})
		if b == nil {
			break
		}
		if seen[b.Name] {
			t.Fatalf("%s offered twice", b.Name)
		}
		seen[b.Name] = true
		p.markTried(b)
	}
	if len(seen) != 2 {
		t.Fatalf("with every node marked, the last resort offered %v, want each node once", seen)
	}
	if b := chain.Select(pool(tb, "/other", "", now), &http.Request{}); b != nil {
		t.Fatalf("a path nobody serves got %v", b)
	}
}

func TestReplicaHolderFollowsPlacement(t *testing.T) {
	now := time.Unix(1000, 0)
	names := []string{"n1", "n2", "n3", "n4", "n5"}
	var entries []memberEntry
	for _, n := range names {
		entries = append(entries, entry(n))
	}
	tb := testTable(t, entries...)
	chain := newChain(DefaultSettings(), Options{Replication: ReplicationBackup, Backups: 1})
	for i := 0; i < 20; i++ {
		id := string(rune('a'+i)) + "-session"
		owners := placement.Owners(id, names, 2)
		sticky := tb.byName[owners[0]]
		sticky.state.failedUntil.Store(now.Add(time.Minute).UnixNano())
		p := pool(tb, "/app", sticky.Route, now)
		p.SessionID = id
		if b := chain.Select(p, &http.Request{}); b == nil || b.Name != owners[1] {
			t.Fatalf("session %s (primary %s dead) went to %v, want backup %s", id, owners[0], b, owners[1])
		}
		sticky.state.failedUntil.Store(0)
	}
}

func TestVersionPreference(t *testing.T) {
	now := time.Unix(1000, 0)
	v := func(ver string) membership.App { return membership.App{Name: "shop", Version: ver, Context: "/shop"} }
	tb := testTable(t, entry("old", v("1")), entry("new", v("10")), entry("both", v("2"), v("10")))
	c := tb.match("/shop/cart")
	if c == nil || !c.multi() || c.all[0] != "10" || c.all[2] != "1" {
		t.Fatalf("versions %v, want newest first by number", c)
	}
	chain := newChain(DefaultSettings(), Options{})
	for i := 0; i < 6; i++ {
		if b := chain.Select(pool(tb, "/shop/cart", "", now), &http.Request{}); b.Name == "old" {
			t.Fatal("new session on the old version")
		}
	}
	p := pool(tb, "/shop", "", now)
	p.Version = "2"
	if b := chain.Select(p, &http.Request{}); b.Name != "both" {
		t.Fatalf("version-2 session went to %s", b.Name)
	}
	for _, n := range []string{"new", "both"} {
		tb.byName[n].state.unhealthy.Store(true)
	}
	if b := chain.Select(pool(tb, "/shop", "", now), &http.Request{}); b.Name != "old" {
		t.Fatalf("with only the old version up, got %s", b.Name)
	}
}

func TestTableMatchAndStatics(t *testing.T) {
	tb := buildTable([]memberEntry{entry("n1", appAt("root", "/"), appAt("a", "/a"), appAt("ab", "/a/b"))},
		[]string{"10.0.0.1:80", "n1:80"}, func(string, uint64) *backendState { return &backendState{} })
	for path, want := range map[string]string{"/a/b/c": "/a/b", "/a/b": "/a/b", "/a/bc": "/a", "/a": "/a",
		"/x": "/", "": "/", "/a/": "/a"} {
		if c := tb.match(path); c == nil || c.path != want {
			t.Errorf("match(%q) = %v, want %s", path, c, want)
		}
	}
	if len(tb.backends) != 2 || tb.byAddr["n1:80"].Static {
		t.Fatalf("a static address that membership knows must not be added twice: %v", tb.backends)
	}
	if c := tb.match("/a"); len(c.backends) != 2 || !c.backends[1].Static {
		t.Fatalf("static backends serve every context: %v", c.backends)
	}
	empty := buildTable(nil, []string{"10.0.0.1:80"}, func(string, uint64) *backendState { return &backendState{} })
	if c := empty.match("/anything"); c == nil || len(c.backends) != 1 {
		t.Fatalf("static-only table: %v", c)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"1", "2", -1}, {"10", "9", 1}, {"1.10", "1.9", 1}, {"", "1", -1}, {"2", "2", 0}, {"007", "7", 0},
		{"1.0-rc1", "1.0-rc2", -1}, {"b", "a", 1}, {"1a", "1", 1}} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		field string
	}{
		{"policy", Options{Settings: Settings{Policy: "random"}}, "Settings.Policy"},
		{"attempts", Options{Settings: Settings{MaxAttempts: 99}}, "Settings.MaxAttempts"},
		{"backend", Options{Settings: Settings{Backends: []string{"nohost"}}}, "Settings.Backends[0]"},
		{"health path", Options{Settings: Settings{HealthPath: "healthz"}}, "Settings.HealthPath"},
		{"cookie", Options{Cookie: "bad cookie"}, "Cookie"},
		{"pin", Options{PinHeader: "X:Y"}, "PinHeader"},
		{"replication", Options{Replication: "mirror"}, "Replication"},
		{"app cookie", Options{AppCookies: map[string]string{"shop": "S"}}, "AppCookies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !containsField(err, tc.field) {
				t.Fatalf("error %v does not name %s", err, tc.field)
			}
		})
	}
	if _, err := New(Options{}); err != nil {
		t.Fatalf("zero options: %v", err)
	}
}

func containsField(err error, field string) bool {
	type multi interface{ Unwrap() []error }
	var walk func(error) bool
	walk = func(e error) bool {
		if fe, ok := e.(*FieldError); ok && fe.Field == field {
			return true
		}
		if m, ok := e.(multi); ok {
			for _, x := range m.Unwrap() {
				if x != nil && walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(err)
}

func TestVersionMemoIsBounded(t *testing.T) {
	m := newVersionMemo(3)
	for i, id := range []string{"a", "b", "c", "d"} {
		m.put(id, string(rune('1'+i)))
	}
	if m.len() != 3 || m.get("a") != "" || m.get("d") != "4" || m.get("b") != "2" {
		t.Fatalf("memo: len %d a=%q b=%q d=%q", m.len(), m.get("a"), m.get("b"), m.get("d"))
	}
	m.put("b", "9") // an update keeps its slot
	if m.len() != 3 || m.get("b") != "9" {
		t.Fatal("update lost")
	}
}
