package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
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
			if ev.Member.State != membership.StateAlive || ev.Member.HTTPAddr != "127.0.0.1:1" ||
				ev.Member.Incarnation != c.members[n].Local().Incarnation {
				t.Fatalf("%s: join of %s carries %+v", obs, n, ev.Member)
			}
		}
		if n := c.recs[obs].Count(membership.EventJoin, obs); n != 0 {
			t.Fatalf("%s got %d events about itself", obs, n)
		}
	}
	for _, m := range c.members["node1"].Members() {
		if m.State != membership.StateAlive || m.LastHeard.IsZero() {
			t.Fatalf("snapshot member %+v", m)
		}
	}
}

func TestUpdatePropagates(t *testing.T) {
	c := newCluster(t, 3, nil)
	app := membership.App{Name: "shop", Version: "2", Context: "/shop"}
	if err := c.members["node2"].UpdateLocal(func(m *membership.Member) {
		m.Meta.Apps = append(m.Meta.Apps, app)
		m.Meta.Draining = true
		m.Name = "renamed" // ignored
	}); err != nil {
		t.Fatal(err)
	}
	if got := c.members["node2"].Local(); got.Name != "node2" || len(got.Meta.Apps) != 1 {
		t.Fatalf("local after update: %+v", got)
	}
	for _, obs := range []string{"node1", "node3"} {
		ev := c.waitEvent(obs, membership.EventUpdate, "node2", 0, time.Second)
		if len(ev.Member.Meta.Apps) != 1 || ev.Member.Meta.Apps[0] != app || !ev.Member.Meta.Draining {
			t.Fatalf("%s: update carries %+v", obs, ev.Member.Meta)
		}
		m, _ := testutil.Find(c.members[obs].Members(), "node2")
		if len(m.Meta.Apps) != 1 {
			t.Fatalf("%s: snapshot not updated: %+v", obs, m)
		}
	}
	// A no-op update sends nothing new.
	if err := c.members["node2"].UpdateLocal(func(*membership.Member) {}); err != nil {
		t.Fatal(err)
	}
	if n := c.recs["node1"].Count(membership.EventUpdate, "node2"); n != 1 {
		t.Fatalf("%d updates, want 1", n)
	}
}

func TestUpdateLocalRefusesBadRecords(t *testing.T) {
	c := newCluster(t, 1, nil)
	p := c.members["node1"]
	err := p.UpdateLocal(func(m *membership.Member) {
		for i := 0; i < membership.MaxApps; i++ {
			m.Meta.Apps = append(m.Meta.Apps, membership.App{Name: fmt.Sprintf("app%03d", i),
				Version: strings.Repeat("v", 60), Context: "/" + strings.Repeat("c", 120)})
		}
	})
	if !errors.Is(err, membership.ErrRecordTooLarge) {
		t.Fatalf("oversized record: got %v", err)
	}
	var fe *membership.FieldError
	if err := p.UpdateLocal(func(m *membership.Member) { m.Route = "bad route" }); !errors.As(err, &fe) || fe.Field != "Route" {
		t.Fatalf("bad route: got %v", err)
	}
	if got := p.Local(); got.Route != "node1" || len(got.Meta.Apps) != 0 {
		t.Fatalf("refused update changed the record: %+v", got)
	}
}

func TestGracefulLeave(t *testing.T) {
	// DropTime is long: only the leave packet can remove node3 in time.
	c := newCluster(t, 3, func(cfg *Config) { cfg.DropTime, cfg.SuspectTime = 20*time.Second, 10*time.Second })
	p := c.members["node3"]
	if err := p.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Leave(context.Background()); err != nil {
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
	c.waitConverged("node1", "node2")
	if n := c.recs["node1"].Count(membership.EventDead, "node3"); n != 0 {
		t.Fatalf("%d dead events after a graceful leave", n)
	}
}

func TestCrashDetected(t *testing.T) {
	c := newCluster(t, 3, nil)
	inc := c.members["node2"].Local().Incarnation
	start := time.Now()
	_ = c.members["node2"].Shutdown() // no Leave: peers must time it out
	for _, obs := range []string{"node1", "node3"} {
		ev := c.waitEvent(obs, membership.EventDead, "node2", inc, 3*time.Second)
		if ev.Member.State != membership.StateDead {
			t.Fatalf("dead event state %v", ev.Member.State)
		}
	}
	// The last heartbeat went out up to one Frequency before Shutdown, and DropTime counts from it.
	if el := time.Since(start); el < c.base.DropTime-c.base.Frequency {
		t.Fatalf("declared dead after %s, before DropTime %s (less one heartbeat period)", el, c.base.DropTime)
	}
	if n := c.recs["node1"].Count(membership.EventLeave, "node2"); n != 0 {
		t.Fatal("a crash was reported as a leave")
	}
	delete(c.members, "node2")
	c.waitConverged("node1", "node3")
}

func TestRestartWithNewIncarnation(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) { cfg.DropTime, cfg.SuspectTime = 20*time.Second, 10*time.Second })
	old := c.members["node3"].Local().Incarnation
	_ = c.members["node3"].Shutdown()
	p := c.start("node3", nil) // long before DropTime
	if p.Local().Incarnation <= old {
		t.Fatalf("new incarnation %d not after %d", p.Local().Incarnation, old)
	}
	for _, obs := range []string{"node1", "node2"} {
		c.waitEvent(obs, membership.EventJoin, "node3", p.Local().Incarnation, 2*time.Second)
		var order []string
		for _, ev := range c.recs[obs].Events() {
			if ev.Member.Name == "node3" {
				order = append(order, fmt.Sprintf("%s/%v", ev.Type, ev.Member.Incarnation == old))
			}
		}
		if want := []string{"join/true", "dead/true", "join/false"}; !equal(order, want) {
			t.Fatalf("%s saw %v, want %v", obs, order, want)
		}
	}
	c.waitConverged(c.names()...)
}

func TestWrongSecretOrClusterKeptOut(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.start("intruder", func(cfg *Config) { cfg.Secret = "another-secret-of-16+bytes" })
	c.start("stranger", func(cfg *Config) { cfg.Cluster = "other-cluster" })
	testutil.Eventually(t, 3*time.Second, func() error {
		s := c.members["node1"].Stats()
		if s.BadMAC == 0 || s.ForeignCluster == 0 {
			return fmt.Errorf("stats %+v: intruder and stranger not counted yet", s)
		}
		return nil
	})
	for _, n := range []string{"node1", "node2"} {
		if got := testutil.Names(c.members[n].Members()); !equal(got, []string{"node1", "node2"}) {
			t.Fatalf("%s sees %v", n, got)
		}
	}
	if got := testutil.Names(c.members["intruder"].Members()); !equal(got, []string{"intruder"}) {
		t.Fatalf("intruder sees %v", got)
	}
}

func TestSubscribeStartsWithCurrentMembers(t *testing.T) {
	c := newCluster(t, 3, nil)
	sub := c.members["node1"].Subscribe()
	defer sub.Close()
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case ev := <-sub.C():
			if ev.Type != membership.EventJoin {
				t.Fatalf("first events must be joins, got %v", ev.Type)
			}
			got[ev.Member.Name] = true
		case <-time.After(2 * time.Second):
			t.Fatalf("initial joins: got %v", got)
		}
	}
	if !got["node2"] || !got["node3"] {
		t.Fatalf("initial joins %v", got)
	}
	ch := c.members["node1"].Events()
	if ch != c.members["node1"].Events() {
		t.Fatal("Events returned a different channel on the second call")
	}
}

func TestLifecycleErrors(t *testing.T) {
	requireMulticast(t)
	cfg := validConfig()
	cfg.Address = fmt.Sprintf("239.77.0.2:%d", testutil.FreeUDPPort(t))
	cfg.Logger = testutil.Logger(t)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Leave(context.Background()); !errors.Is(err, membership.ErrNotStarted) {
		t.Fatalf("Leave before Start: %v", err)
	}
	events := p.Events()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); !errors.Is(err, membership.ErrStarted) {
		t.Fatalf("second Start: %v", err)
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
	if _, ok := <-p.Subscribe().C(); ok {
		t.Fatal("Subscribe after Shutdown gave an open channel")
	}
}

func TestStartRefusesNonMulticastInterface(t *testing.T) {
	cfg := validConfig()
	cfg.Interface = "no-such-interface0"
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "no-such-interface0") {
		t.Fatalf("got %v, want an error naming the interface", err)
	}
}

// TestForgedAndMalformedIgnored sends hostile datagrams to the group from a
// raw socket pinned to lo and checks each is counted and none changes the
// membership.
func TestForgedAndMalformedIgnored(t *testing.T) {
	c := newCluster(t, 2, nil)
	target := c.members["node1"]
	key := testKey(t, c.base.Cluster)
	cl := c.base.Cluster
	now := time.Now().UnixNano()
	rec := testRecord(t, cl, "ghost", 7, 1)
	captured := captureHeartbeat(t, c)

	send := rawSender(t, c)
	before := target.Stats()
	send(nil, []byte("garbage"))
	send(nil, encodePacket(kindHeartbeat, cl, 1, now, []byte{0x93, 0x01}, key))
	send(nil, encodePacket(kindHeartbeat, cl, 1, now, rec, []byte("not-the-key")))
	send(nil, encodePacket(kindLeave, cl, 1<<40, now, testRecord(t, cl, "node2", c.members["node2"].Local().Incarnation, 1), []byte("forged")))
	send(nil, encodePacket(kindHeartbeat, "elsewhere", 1, now, testRecord(t, "elsewhere", "ghost", 7, 1), key))
	send(nil, encodePacket(kindHeartbeat, cl, 1, now-int64(time.Hour), rec, key))
	send(nil, encodePacket(kindHeartbeat, cl, 1, now+int64(time.Hour), rec, key))
	send(nil, captured) // a real heartbeat of node2, replayed
	send(nil, encodePacket(kindHeartbeat, cl, 1<<40, now, testRecord(t, cl, "node1", 12345, 1), key))

	testutil.Eventually(t, 3*time.Second, func() error {
		s := target.Stats()
		d := Stats{Malformed: s.Malformed - before.Malformed, BadMAC: s.BadMAC - before.BadMAC,
			ForeignCluster: s.ForeignCluster - before.ForeignCluster, Stale: s.Stale - before.Stale,
			Replayed: s.Replayed - before.Replayed, NameConflict: s.NameConflict - before.NameConflict}
		want := Stats{Malformed: 2, BadMAC: 2, ForeignCluster: 1, Stale: 2, Replayed: 1, NameConflict: 1}
		if d != want {
			return fmt.Errorf("counter deltas %+v, want %+v", d, want)
		}
		return nil
	})
	c.waitConverged("node1", "node2")
	for _, ev := range c.recs["node1"].Events() {
		if ev.Member.Name != "node2" || ev.Type != membership.EventJoin {
			t.Fatalf("hostile packets caused %v of %s", ev.Type, ev.Member.Name)
		}
	}
}

// captureHeartbeat returns one real datagram of node2 read from the group.
func captureHeartbeat(t *testing.T, c *cluster) []byte {
	t.Helper()
	s, err := openSockets(context.Background(), "lo", c.base.Address, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	buf := make([]byte, readBuffer)
	_ = s.recv.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, _, err := s.recv.ReadFrom(buf)
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		p, err := decodePacket(buf[:n], c.base.Cluster, testKey(t, c.base.Cluster))
		if err == nil && p.rec.Member.Name == "node2" {
			return append([]byte(nil), buf[:n]...)
		}
	}
}

// rawSender returns a function that sends datagrams to the cluster's group
// on lo (the dst argument is ignored when nil).
func rawSender(t *testing.T, c *cluster) func(dst *net.UDPAddr, b []byte) {
	s, err := openSockets(context.Background(), "lo", c.base.Address, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return func(dst *net.UDPAddr, b []byte) {
		if dst == nil {
			dst = s.group
		}
		if _, err := s.send.WriteTo(b, dst); err != nil {
			t.Fatal(err)
		}
	}
}
