package replication

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/placement"
	"github.com/herdproject/herd/session"
)

func withMode(manager, mode string) clusterOpts {
	return clusterOpts{cfg: func(c *Config) { c.Manager, c.Mode = manager, mode }}
}

// In sync and pooled modes a 2xx answer means the change is already on every peer that must hold it.
func TestSyncAndPooledAckedBeforeResponse(t *testing.T) {
	for _, manager := range []string{ManagerDelta, ManagerBackup} {
		for _, mode := range []string{ModeSync, ModePooled} {
			t.Run(manager+"/"+mode, func(t *testing.T) {
				nodes := startCluster(t, 3, withMode(manager, mode))
				c := newClient(t)
				for i := 1; i <= 5; i++ {
					status, body := c.get(nodes[0], "/inc")
					if status != 200 || body != strconv.Itoa(i) {
						t.Fatalf("inc %d: %d %q", i, status, body)
					}
					id := c.sessionID(nodes[0])
					holders := []*tnode{nodes[1], nodes[2]}
					if manager == ManagerBackup {
						want := placement.Owners(id, []string{"node2", "node3"}, 1)[0]
						holders = slices.DeleteFunc(holders, func(n *tnode) bool { return n.name != want })
					}
					for _, h := range holders { // read at once: no waiting allowed
						if got := value(h, id); got != body {
							t.Fatalf("after inc %d, %s holds %q", i, h.name, got)
						}
					}
				}
				if manager == ManagerBackup { // exactly one backup copy
					id := c.sessionID(nodes[0])
					n := 0
					for _, h := range nodes[1:] {
						if value(h, id) != "" {
							n++
						}
					}
					if n != 1 {
						t.Fatalf("backup manager: %d copies on peers, want 1", n)
					}
				}
				st := nodes[0].rep.Stats()
				if st.SyncWaits == 0 || st.SyncFailures != 0 || st.Mode != mode {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// Async mode answers at once and converges.
func TestAsyncConverges(t *testing.T) {
	nodes := startCluster(t, 3, withMode(ManagerDelta, ModeAsync))
	var clients []*client
	for range 10 {
		c := newClient(t)
		for range 5 {
			if status, _ := c.get(nodes[0], "/inc"); status != 200 {
				t.Fatal(status)
			}
		}
		clients = append(clients, c)
	}
	waitFor(t, 5*time.Second, "async replicas to converge", func() bool {
		for _, c := range clients {
			id := c.sessionID(nodes[0])
			if value(nodes[1], id) != "5" || value(nodes[2], id) != "5" {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "acks counted", func() bool { return nodes[0].rep.Stats().Peers[0].Acked == 50 })
	if st := nodes[0].rep.Stats(); st.SyncWaits != 0 || st.Peers[0].Dropped != 0 {
		t.Fatalf("async stats %+v", st)
	}
}

// Kill -9 the serving node: every acknowledged value is read back from the survivors, the session is
// rebound to the new node's route, and its next change replicates from there.
func TestFailoverAfterKill(t *testing.T) {
	for _, manager := range []string{ManagerDelta, ManagerBackup} {
		t.Run(manager, func(t *testing.T) {
			nodes := startCluster(t, 3, withMode(manager, ModePooled))
			var clients []*client
			acked := map[*client]int{}
			for i := range 12 {
				c := newClient(t)
				for j := 0; j <= i%4; j++ {
					status, body := c.get(nodes[0], "/inc")
					if status != 200 {
						t.Fatal(status, body)
					}
					acked[c], _ = strconv.Atoi(body)
				}
				clients = append(clients, c)
			}
			nodes[0].kill()
			waitFor(t, 10*time.Second, "node1 to leave the survivors' view", func() bool {
				return len(nodes[1].rep.view.Load().peers) == 1 && len(nodes[2].rep.view.Load().peers) == 1
			})
			for i, c := range clients {
				// The router would pick the backup holder; node2 has to fetch what it lacks.
				target := nodes[1+i%2]
				status, body := c.get(target, "/get")
				if status != 200 || body != strconv.Itoa(acked[c]) {
					t.Fatalf("client %d on %s after kill: %d %q, acknowledged %d", i, target.name, status, body, acked[c])
				}
				req, _ := http.NewRequest(http.MethodGet, target.srv.URL, nil)
				if ck := c.jar.Cookies(req.URL); len(ck) != 1 || ck[0].Value[len(ck[0].Value)-len(target.name):] != target.name {
					t.Fatalf("cookie not rebound to %s: %v", target.name, ck)
				}
				if status, body := c.get(target, "/inc"); status != 200 || body != strconv.Itoa(acked[c]+1) {
					t.Fatalf("inc after failover: %d %q", status, body)
				}
				other := nodes[1]
				if target == nodes[1] {
					other = nodes[2]
				}
				if got := value(other, c.sessionID(target)); got != strconv.Itoa(acked[c]+1) {
					t.Fatalf("change on %s after failover not on %s: %q", target.name, other.name, got)
				}
			}
		})
	}
}

// The backup manager restores 1+Backups copies of a dead primary's sessions without any request.
func TestBackupRestoresCopiesAfterDeath(t *testing.T) {
	nodes := startCluster(t, 4, withMode(ManagerBackup, ModeSync))
	var ids []string
	for range 20 {
		c := newClient(t)
		c.get(nodes[0], "/inc")
		ids = append(ids, c.sessionID(nodes[0]))
	}
	nodes[0].kill()
	survivors := nodes[1:]
	waitFor(t, 10*time.Second, "two copies of every session on the survivors", func() bool {
		for _, id := range ids {
			n := 0
			for _, s := range survivors {
				if value(s, id) == "1" {
					n++
				}
			}
			if n < 2 {
				return false
			}
		}
		return true
	})
	var adopted uint64
	for _, s := range survivors {
		adopted += s.rep.Stats().Adopted
	}
	if adopted != uint64(len(ids)) {
		t.Fatalf("%d sessions adopted, want %d (one custodian each)", adopted, len(ids))
	}
}

// A node that (re)starts pulls the sessions it must hold before it reports ready.
func TestStateTransferOnRestart(t *testing.T) {
	for _, manager := range []string{ManagerDelta, ManagerBackup} {
		t.Run(manager, func(t *testing.T) {
			o := withMode(manager, ModePooled)
			nodes := startCluster(t, 3, o)
			nodes[2].stop()
			var clients []*client
			for i := range 30 {
				c := newClient(t)
				for range 1 + i%3 {
					c.get(nodes[i%2], "/inc")
				}
				clients = append(clients, c)
			}
			back := newNode(t, "node3", o, nodes[0].mem.Addr())
			waitFor(t, 10*time.Second, "restarted node3 ready", func() bool { return back.rep.Ready() == nil })
			st := back.rep.Stats().Transfer
			if st == nil || !st.Done || st.Error != "" {
				t.Fatalf("transfer %+v", st)
			}
			want := 0
			for i, c := range clients {
				owner := nodes[i%2]
				id := c.sessionID(owner)
				if manager == ManagerBackup {
					others := []string{"node1", "node2", "node3"}
					others = slices.DeleteFunc(others, func(n string) bool { return n == owner.name })
					if placement.Owners(id, others, 1)[0] != "node3" {
						continue
					}
				}
				want++
				if got := value(back, id); got != strconv.Itoa(1+i%3) {
					t.Fatalf("session %d on restarted node3: %q, want %d", i, got, 1+i%3)
				}
			}
			if st.Sessions < want || want == 0 {
				t.Fatalf("transferred %d sessions, want at least %d", st.Sessions, want)
			}
		})
	}
}

// Concurrent updates of different sessions on different nodes all land everywhere.
func TestConcurrentSessions(t *testing.T) {
	nodes := startCluster(t, 3, withMode(ManagerDelta, ModePooled))
	var wg sync.WaitGroup
	clients := make([]*client, 16)
	errs := make(chan error, len(clients))
	for i := range clients {
		clients[i] = newClient(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 1; j <= 20; j++ {
				resp, err := clients[i].hc.Get(nodes[i%3].srv.URL + "/inc")
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, c := range clients {
		id := c.sessionID(nodes[0])
		for _, n := range nodes {
			if got := value(n, id); got != "20" {
				t.Fatalf("client %d: %s holds %q", i, n.name, got)
			}
		}
	}
}

// A peer that is alive in membership but does not answer: policy respond answers 200 and counts,
// policy fail answers 503; once the peer is back the session reaches it whole.
func TestAckTimeoutPolicies(t *testing.T) {
	o := clusterOpts{cfg: func(c *Config) {
		c.Mode, c.AckTimeout, c.AckPolicy = ModeSync, 300*time.Millisecond, PolicyRespond
	}}
	nodes := startCluster(t, 2, o)
	c := newClient(t)
	c.get(nodes[0], "/inc")
	// Cut node2's channel only: membership still says it is alive.
	_ = nodes[1].ch.Shutdown()
	if status, body := c.get(nodes[0], "/inc"); status != 200 || body != "2" {
		t.Fatalf("respond policy: %d %q", status, body)
	}
	if st := nodes[0].rep.Stats(); st.SyncFailures != 1 {
		t.Fatalf("stats after a missed ack: %+v", st)
	}
	// The session waits for a whole resend to node2 (the sender retries it in the background, so it
	// may be in flight for a moment).
	waitFor(t, 5*time.Second, "the session marked for a resend", func() bool { return nodes[0].rep.Stats().Peers[0].Resync == 1 })
	if err := nodes[0].rep.SetMode(ModePooled, 300*time.Millisecond, PolicyFail); err != nil {
		t.Fatal(err)
	}
	if status, body := c.get(nodes[0], "/inc"); status != http.StatusServiceUnavailable {
		t.Fatalf("fail policy answered %d %q", status, body)
	}
	if err := nodes[0].rep.SetMode("fast", time.Second, PolicyFail); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// Requests the replication valve filters (session.Skip) cause no replication traffic.
func TestFilteredRequestsSendNothing(t *testing.T) {
	nodes := startCluster(t, 2, withMode(ManagerDelta, ModeSync))
	c := newClient(t)
	c.get(nodes[0], "/inc")
	before := nodes[0].ch.Stats().Peers["node2"].SentFrames
	for range 20 {
		if status, body := c.get(nodes[0], "/style.css"); status != 200 || body != "body{} /* true */" {
			t.Fatalf("static: %d %q", status, body)
		}
	}
	if after := nodes[0].ch.Stats().Peers["node2"].SentFrames; after != before {
		t.Fatalf("filtered requests sent %d frames", after-before)
	}
}

// Expiry: a session expired on its owner is gone everywhere; one kept alive by requests on its owner
// does not expire on the replicas.
func TestExpiryConsistent(t *testing.T) {
	o := clusterOpts{cfg: func(c *Config) { c.Mode = ModeSync },
		sess: func(s *session.Options) { s.MaxInactive, s.SweepInterval = time.Second, 50*time.Millisecond }}
	nodes := startCluster(t, 3, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range nodes {
		go n.sm.Run(ctx)
	}
	idle, busy := newClient(t), newClient(t)
	idle.get(nodes[0], "/inc")
	busy.get(nodes[0], "/inc")
	idleID, busyID := idle.sessionID(nodes[0]), busy.sessionID(nodes[0])
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) { // read-only requests on the owner keep it alive
		if status, _ := busy.get(nodes[0], "/get"); status != 200 {
			t.Fatalf("busy session lost on its owner: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, n := range nodes {
		if value(n, idleID) != "" {
			t.Fatalf("idle session still on %s", n.name)
		}
		if value(n, busyID) != "1" {
			t.Fatalf("busy session expired on %s", n.name)
		}
	}
}

// An outsider with the wrong secret cannot inject a session; a member sending garbage is refused and
// the node keeps working.
func TestOutsiderAndGarbageRefused(t *testing.T) {
	nodes := startCluster(t, 2, withMode(ManagerDelta, ModeSync))
	forged := session.Delta{ID: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", App: "counter", Kind: session.KindCreated,
		Version: 1, Full: true, Set: map[string][]byte{"n": []byte("999")}, Created: time.Now(),
		LastAccess: time.Now(), MaxInactive: time.Hour}
	enc, err := session.MarshalDelta(forged)
	if err != nil {
		t.Fatal(err)
	}
	cc := channel.DefaultLocalConfig()
	cc.Name, cc.Cluster, cc.Secret, cc.Bind = "intruder", testCluster, []byte("a-wrong-secret-of-enough-length"), ""
	bad, err := channel.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer bad.Shutdown()
	_, err = bad.Request(context.Background(), nodes[0].ch.Addr(), channel.Message{Type: TypeDeltas, Body: encodeBatch([][]byte{enc})})
	if err == nil {
		t.Fatal("wrong-secret peer was answered")
	}
	if value(nodes[0], forged.ID) != "" || nodes[0].sm.Len() != 0 {
		t.Fatal("outsider injected a session")
	}
	// A member (right secret) sending garbage gets an error; nothing else is affected.
	for _, body := range [][]byte{{0xc1}, {0x91, 0x80}, append(encodeBatch([][]byte{enc}), 0x00), {0xdd, 0xff, 0xff, 0xff, 0xff}} {
		_, err := nodes[1].ch.Request(context.Background(), nodes[0].ch.Addr(), channel.Message{Type: TypeDeltas, Body: body})
		var remote *channel.RemoteError
		if !errors.As(err, &remote) {
			t.Fatalf("garbage %x: %v", body, err)
		}
	}
	if st := nodes[0].rep.Stats(); st.BadMessages != 4 {
		t.Fatalf("bad messages counted: %d", st.BadMessages)
	}
	c := newClient(t)
	if status, body := c.get(nodes[0], "/inc"); status != 200 || body != "1" || value(nodes[1], c.sessionID(nodes[0])) != "1" {
		t.Fatalf("node after garbage: %d %q", status, body)
	}
}

// A node's membership record must carry its channel address for peers to find it.
func TestPeersNeedChannelAddr(t *testing.T) {
	nodes := startCluster(t, 2, clusterOpts{})
	if err := nodes[1].mem.UpdateLocal(func(m *membership.Member) { m.ChannelAddr = "" }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "node2 dropped as a peer", func() bool { return len(nodes[0].rep.view.Load().peers) == 0 })
}
