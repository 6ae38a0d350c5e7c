package gossip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
)

func TestJoinFiveMembers(t *testing.T) {
	c := newCluster(t, 5, nil)
	for _, obs := range c.names() {
		for _, n := range c.names() {
			if n == obs {
				continue
			}
			ev := c.waitEvent(obs, membership.EventJoin, n, 0, time.Second)
			if ev.Member.State != membership.StateAlive || ev.Member.ChannelAddr != "127.0.0.1:2" ||
				ev.Member.Incarnation != c.members[n].Local().Incarnation || ev.Member.Meta.Version != "test" {
				t.Fatalf("%s: join of %s carries %+v", obs, n, ev.Member)
			}
		}
		if n := c.recs[obs].Count(membership.EventJoin, obs); n != 0 {
			t.Fatalf("%s got %d events about itself", obs, n)
		}
	}
	if !strings.HasPrefix(c.members["node3"].Addr(), "127.0.0.1:") || strings.HasSuffix(c.members["node3"].Addr(), ":0") {
		t.Fatalf("Addr %q", c.members["node3"].Addr())
	}
}

func TestUpdatePropagates(t *testing.T) {
	c := newCluster(t, 3, nil)
	app := membership.App{Name: "shop", Version: "2", Context: "/shop"}
	if err := c.members["node2"].UpdateLocal(func(m *membership.Member) {
		m.Meta.Apps = append(m.Meta.Apps, app)
		m.Meta.Extra = map[string]string{"zone": "a"}
	}); err != nil {
		t.Fatal(err)
	}
	for _, obs := range []string{"node1", "node3"} {
		ev := c.waitEvent(obs, membership.EventUpdate, "node2", 0, 2*time.Second)
		if len(ev.Member.Meta.Apps) != 1 || ev.Member.Meta.Apps[0] != app || ev.Member.Meta.Extra["zone"] != "a" {
			t.Fatalf("%s: update carries %+v", obs, ev.Member.Meta)
		}
	}
	if err := c.members["node2"].UpdateLocal(func(*membership.Member) {}); err != nil {
		t.Fatal(err)
	}
	if n := c.recs["node1"].Count(membership.EventUpdate, "node2"); n != 1 {
		t.Fatalf("%d updates, want 1", n)
	}
}

// manyApps returns n apps whose record exceeds memberlist's 512-byte meta.
func manyApps(n, version int) []membership.App {
	var apps []membership.App
	for i := 0; i < n; i++ {
		apps = append(apps, membership.App{Name: fmt.Sprintf("application-%02d", i),
			Version: fmt.Sprint(version), Context: fmt.Sprintf("/application-%02d", i)})
	}
	return apps
}

// TestLargeRecordPropagates exercises the compact-meta path: records too
// big for memberlist's meta reach peers whole over TCP, at join and on update.
func TestLargeRecordPropagates(t *testing.T) {
	c := newCluster(t, 2, nil)
	big := c.start("big", func(cfg *Config) { cfg.Local.Meta.Apps = manyApps(30, 1) })
	if !big.partial {
		t.Fatal("30 apps should not fit in meta")
	}
	waitApps := func(obs string, n, version int) {
		testutil.Eventually(t, 5*time.Second, func() error {
			m, ok := testutil.Find(c.members[obs].Members(), "big")
			if !ok || len(m.Meta.Apps) != n || m.Meta.Apps[n-1].Version != fmt.Sprint(version) {
				return fmt.Errorf("%s sees big with %d apps (%v)", obs, len(m.Meta.Apps), ok)
			}
			return nil
		})
	}
	waitApps("node1", 30, 1)
	waitApps("node2", 30, 1)
	if err := big.UpdateLocal(func(m *membership.Member) { m.Meta.Apps = manyApps(40, 2) }); err != nil {
		t.Fatal(err)
	}
	waitApps("node1", 40, 2)
	waitApps("node2", 40, 2)
	c.start("late", nil) // joins after the update: gets the full record too
	waitApps("late", 40, 2)
	if big.Stats().RecordsSent == 0 {
		t.Fatal("no full record was pushed")
	}
}

func TestGracefulLeave(t *testing.T) {
	c := newCluster(t, 3, nil)
	p := c.members["node3"]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if p.Local().State != membership.StateLeaving {
		t.Fatalf("local state %v", p.Local().State)
	}
	if err := p.UpdateLocal(func(*membership.Member) {}); !errors.Is(err, membership.ErrLeft) {
		t.Fatalf("UpdateLocal after Leave: %v", err)
	}
	for _, obs := range []string{"node1", "node2"} {
		ev := c.waitEvent(obs, membership.EventLeave, "node3", 0, 2*time.Second)
		if ev.Member.State != membership.StateLeaving {
			t.Fatalf("leave event state %v", ev.Member.State)
		}
	}
	delete(c.members, "node3")
	c.waitConverged("node1", "node2")
	if n := c.recs["node1"].Count(membership.EventDead, "node3"); n != 0 {
		t.Fatalf("%d dead events after a graceful leave", n)
	}
}

func TestCrashDetected(t *testing.T) {
	c := newCluster(t, 3, nil)
	inc := c.members["node2"].Local().Incarnation
	_ = c.members["node2"].Shutdown()
	for _, obs := range []string{"node1", "node3"} {
		ev := c.waitEvent(obs, membership.EventDead, "node2", inc, 5*time.Second)
		if ev.Member.State != membership.StateDead {
			t.Fatalf("dead event state %v", ev.Member.State)
		}
	}
	if n := c.recs["node1"].Count(membership.EventLeave, "node2"); n != 0 {
		t.Fatal("a crash was reported as a leave")
	}
	delete(c.members, "node2")
	c.waitConverged("node1", "node3")
}

// TestRestartSameAddress restarts a member on its old address before its
// crash is detected: peers must report the old incarnation dead, then the
// new one joined.
func TestRestartSameAddress(t *testing.T) {
	c := newCluster(t, 3, nil)
	old, addr := c.members["node3"].Local().Incarnation, c.members["node3"].Addr()
	_ = c.members["node3"].Shutdown()
	p := c.start("node3", func(cfg *Config) { cfg.BindAddr = addr })
	checkRestart(t, c, old, p.Local().Incarnation)
}

// TestRestartNewAddress restarts a member on a new port after peers
// declared it dead.
func TestRestartNewAddress(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.members["node3"].Local().Incarnation
	_ = c.members["node3"].Shutdown()
	c.waitEvent("node1", membership.EventDead, "node3", old, 5*time.Second)
	p := c.start("node3", nil)
	checkRestart(t, c, old, p.Local().Incarnation)
}

func checkRestart(t *testing.T, c *cluster, old, inc uint64) {
	t.Helper()
	if inc <= old {
		t.Fatalf("new incarnation %d not after %d", inc, old)
	}
	for _, obs := range []string{"node1", "node2"} {
		c.waitEvent(obs, membership.EventJoin, "node3", inc, 5*time.Second)
		var order []string
		for _, ev := range c.recs[obs].Events() {
			if ev.Member.Name == "node3" {
				order = append(order, fmt.Sprintf("%s/%v", ev.Type, ev.Member.Incarnation == old))
			}
		}
		// A stale death notice of the old incarnation, still gossiping when the new one joins, can
		// mark the new one dead for a moment; it refutes it at once. Only the new incarnation may
		// flap, and only after its first join.
		if want := []string{"join/true", "dead/true", "join/false"}; len(order) < 3 || !equal(order[:3], want) {
			t.Fatalf("%s saw %v, want %v first", obs, order, want)
		}
		for _, e := range order[3:] {
			if strings.HasSuffix(e, "/true") {
				t.Fatalf("%s saw the old incarnation again: %v", obs, order)
			}
		}
		if len(order) > 3 {
			t.Logf("%s saw the new incarnation flap: %v", obs, order)
		}
	}
	c.waitConverged(c.names()...)
}

func TestWrongSecretOrClusterKeptOut(t *testing.T) {
	c := newCluster(t, 2, nil)
	intruder := c.start("intruder", func(cfg *Config) { cfg.Secret = "another-secret-of-16+bytes" })
	stranger := c.start("stranger", func(cfg *Config) { cfg.Cluster = "other-cluster" })
	testutil.Eventually(t, 5*time.Second, func() error {
		for _, p := range []*Provider{intruder, stranger} {
			if s := p.Stats(); s.JoinFailures < 2 {
				return fmt.Errorf("%s: %+v: fewer than 2 failed joins yet", p.Local().Name, s)
			}
		}
		return nil
	})
	for _, n := range []string{"node1", "node2"} {
		if got := testutil.Names(c.members[n].Members()); !equal(got, []string{"node1", "node2"}) {
			t.Fatalf("%s sees %v", n, got)
		}
	}
	for _, p := range []*Provider{intruder, stranger} {
		if got := testutil.Names(p.Members()); len(got) != 1 {
			t.Fatalf("%s sees %v", p.Local().Name, got)
		}
	}
}

func TestLifecycleErrors(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.Cluster, cfg.Secret = "demo", testSecret
	cfg.Local = membership.Member{Name: "solo"}
	cfg.Logger = testutil.Logger(t)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr() != "" {
		t.Fatalf("Addr before Start: %q", p.Addr())
	}
	if err := p.Leave(context.Background()); !errors.Is(err, membership.ErrNotStarted) {
		t.Fatalf("Leave before Start: %v", err)
	}
	if err := p.UpdateLocal(func(m *membership.Member) { m.Meta.Draining = true }); err != nil {
		t.Fatalf("UpdateLocal before Start: %v", err)
	}
	events := p.Events()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !p.Local().Meta.Draining {
		t.Fatal("update before Start lost")
	}
	if err := p.Start(context.Background()); !errors.Is(err, membership.ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	if got := testutil.Names(p.Members()); !equal(got, []string{"solo"}) {
		t.Fatalf("alone: %v", got)
	}
	if err := p.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("event after Shutdown")
		}
	case <-time.After(time.Second):
		t.Fatal("Events not closed by Shutdown")
	}
	for name, err := range map[string]error{
		"Start":       p.Start(context.Background()),
		"Leave":       p.Leave(context.Background()),
		"UpdateLocal": p.UpdateLocal(func(*membership.Member) {}),
	} {
		if !errors.Is(err, membership.ErrShutdown) {
			t.Fatalf("%s after Shutdown: %v", name, err)
		}
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	c := newCluster(t, 1, nil)
	cfg := c.base
	cfg.Local = membership.Member{Name: "clash"}
	cfg.BindAddr = c.members["node1"].Addr()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), cfg.BindAddr) {
		t.Fatalf("got %v, want an error naming %s", err, cfg.BindAddr)
	}
}
