package session

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	if d := DefaultOptions(); d.CookieName != "JSESSIONID" || d.MaxInactive != 30*time.Minute || d.MaxSize != 64<<10 {
		t.Fatalf("defaults %+v", d)
	}
	tests := []struct {
		name  string
		mod   func(*Options)
		field string
	}{
		{"route", func(o *Options) { o.Route = "a b" }, "Route"},
		{"cookie", func(o *Options) { o.CookieName = "a;b" }, "CookieName"},
		{"max inactive", func(o *Options) { o.MaxInactive = -time.Second }, "MaxInactive"},
		{"max size", func(o *Options) { o.MaxSize = -1 }, "MaxSize"},
		{"sweep", func(o *Options) { o.SweepInterval = -1 }, "SweepInterval"},
		{"proxies", func(o *Options) { o.TrustedProxies = []netip.Prefix{{}} }, "TrustedProxies[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{}
			tc.mod(&o)
			_, err := NewManager(o)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want mention of %s", err, tc.field)
			}
		})
	}
}

func TestCreateGetInvalidate(t *testing.T) {
	m, _ := testManager(t, nil)
	rec := record(m)
	if _, err := m.Create(""); err == nil {
		t.Fatal("empty app accepted")
	}
	s, _ := m.Create("shop##2")
	if got, ok := m.Get(s.ID()); !ok || got != s || s.App() != "shop##2" || m.Len() != 1 {
		t.Fatal("Get after Create")
	}
	if _, ok := m.Get(newID()); ok {
		t.Fatal("unknown id found")
	}
	// Never committed: invalidation is silent.
	if err := m.Invalidate(s.ID()); err != nil {
		t.Fatal(err)
	}
	if len(rec.all()) != 0 {
		t.Fatalf("uncommitted session announced: %v", rec.kinds())
	}
	if err := m.Invalidate(s.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second invalidate: %v", err)
	}
	s2, _ := m.Create("shop##2")
	s2.Commit()
	if err := m.Invalidate(s2.ID()); err != nil {
		t.Fatal(err)
	}
	ds := rec.all()
	if len(ds) != 2 || ds[1].Kind != KindInvalidated || ds[1].Version != 2 || m.Len() != 0 {
		t.Fatalf("deltas %+v len %d", ds, m.Len())
	}
}

func TestExpiry(t *testing.T) {
	m, clk := testManager(t, func(o *Options) { o.MaxInactive = time.Minute })
	rec := record(m)
	s, _ := m.Create("app")
	s.Commit()
	idle, _ := m.Create("app")
	idle.Commit()
	clk.Advance(50 * time.Second)
	s.Commit() // an access
	clk.Advance(20 * time.Second)
	if _, ok := m.Get(idle.ID()); ok {
		t.Fatal("expired session returned by Get")
	}
	if _, ok := m.Get(s.ID()); !ok {
		t.Fatal("recently used session expired")
	}
	if n := m.Sweep(); n != 1 || m.Len() != 1 {
		t.Fatalf("swept %d, left %d", n, m.Len())
	}
	last := rec.all()[len(rec.all())-1]
	if last.Kind != KindExpired || last.ID != idle.ID() || idle.Valid() {
		t.Fatalf("last delta %+v", last)
	}
	if len(m.List()) != 1 {
		t.Fatal("List after sweep")
	}
}

func TestRunSweepsUntilCancelled(t *testing.T) {
	m, clk := testManager(t, func(o *Options) { o.MaxInactive = time.Minute; o.SweepInterval = 5 * time.Millisecond })
	s, _ := m.Create("app")
	s.Commit()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	clk.Advance(2 * time.Minute)
	waitFor(t, "sweeper to expire the session", func() bool { return m.Len() == 0 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestChangeID(t *testing.T) {
	m, _ := testManager(t, nil)
	rec := record(m)
	s, _ := m.Create("app")
	_ = s.Set("user", []byte("ann"))
	s.Commit()
	old := s.ID()
	nid, err := m.ChangeID(old)
	if err != nil {
		t.Fatal(err)
	}
	if nid == old || !ValidID(nid) || s.ID() != nid || s.Version() != 2 {
		t.Fatalf("new id %q (old %q) v%d", nid, old, s.Version())
	}
	if _, ok := m.Get(old); ok {
		t.Fatal("old id still valid")
	}
	if got, ok := m.Get(nid); !ok || got != s {
		t.Fatal("new id not found")
	}
	d := rec.all()[1]
	if d.Kind != KindIDChanged || d.OldID != old || d.ID != nid || !d.Full || string(d.Set["user"]) != "ann" {
		t.Fatalf("delta %+v", d)
	}
	if _, err := m.ChangeID(old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("change of stale id: %v", err)
	}
}

func TestListAndSubscribeCancel(t *testing.T) {
	m, _ := testManager(t, nil)
	rec := record(m)
	var n int
	var mu sync.Mutex
	cancel := m.Subscribe(func(Delta) { mu.Lock(); n++; mu.Unlock() })
	m.Subscribe(func(Delta) { panic("subscriber bug") }) // logged, not fatal
	a, _ := m.Create("a")
	_ = a.Set("k", []byte("12345"))
	a.Commit()
	cancel()
	cancel()
	b, _ := m.Create("b")
	b.Commit()
	mu.Lock()
	defer mu.Unlock()
	if n != 1 || len(rec.all()) != 2 {
		t.Fatalf("cancelled subscriber got %d, recorder %d", n, len(rec.all()))
	}
	list := m.List()
	if len(list) != 2 {
		t.Fatalf("list %+v", list)
	}
	for _, in := range list {
		if in.ID == a.ID() && (in.App != "a" || in.Keys != 1 || in.Size != a.Size() || in.Version != 1 || in.MaxInactiveSeconds != 1800) {
			t.Fatalf("info %+v", in)
		}
	}
	if !reflect.DeepEqual(m.Options().Route, "node1") {
		t.Fatal("Options")
	}
}
