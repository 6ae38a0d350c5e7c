package session

import (
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testManager returns a Manager with a fake clock, logging to the test.
func testManager(t testing.TB, mod func(*Options)) (*Manager, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	opts := Options{
		Route:  "node1",
		Clock:  clk.Now,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, clk
}

// recorder collects the deltas a Manager emits.
type recorder struct {
	mu     sync.Mutex
	deltas []Delta
}

func record(m *Manager) *recorder {
	r := &recorder{}
	m.Subscribe(func(d Delta) {
		r.mu.Lock()
		r.deltas = append(r.deltas, d)
		r.mu.Unlock()
	})
	return r
}

func (r *recorder) all() []Delta {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delta(nil), r.deltas...)
}

func (r *recorder) kinds() []Kind {
	var ks []Kind
	for _, d := range r.all() {
		ks = append(ks, d.Kind)
	}
	return ks
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
