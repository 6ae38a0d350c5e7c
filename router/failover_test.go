package router

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/loadgen"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/placement"
)

// TestKillNodeUnderLoad runs bounded sticky load through the router on three node processes, kills
// one with SIGKILL mid-run, and counts what clients saw: idempotent requests must all succeed.
func TestKillNodeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	c := newCluster(t)
	c.addNode("node1", nil) // in-process seed
	child2, _ := c.startChild("node2")
	c.startChild("node3")
	r := c.addRouter(nil)
	r.waitRoutable(t, "/counter", "node1", "node2", "node3")

	var hitNode2 atomic.Int64
	var killed atomic.Bool
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	go func() {
		// Kill node2 once it has served part of the load.
		for ctx.Err() == nil && hitNode2.Load() < 30 {
			time.Sleep(5 * time.Millisecond)
		}
		if ctx.Err() == nil {
			_ = child2.Process.Kill()
			killed.Store(true)
		}
	}()
	res, err := loadgen.Run(ctx, loadgen.Options{
		URL: r.url + "/counter/inc", Concurrency: 6, Duration: 3 * time.Second, Requests: 6000, Cookies: true,
		Check: func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d: %s", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Node") == "node2" {
				hitNode2.Add(1)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GET load across the kill: %v", res)
	if !killed.Load() {
		t.Fatalf("node2 was never killed (it served %d requests)", hitNode2.Load())
	}
	if res.Failures != 0 {
		t.Fatalf("%d client-visible errors for idempotent requests, first: %v", res.Failures, res.FirstErr)
	}
	if res.Requests < 100 {
		t.Fatalf("only %d requests completed", res.Requests)
	}
	waitFor(t, 8*time.Second, "membership to declare node2 dead", func() error {
		if r.Table().lookup("node2") != nil {
			return fmt.Errorf("node2 still in the table")
		}
		return nil
	})
}

// TestPOSTAcrossKillIsNotReplayed kills a node while POSTs with bodies run: the ones the node had
// received are answered 502 (never sent twice), and none hang.
func TestPOSTAcrossKillIsNotReplayed(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	c := newCluster(t)
	c.addNode("node1", nil)
	child2, _ := c.startChild("node2")
	r := c.addRouter(nil)
	r.waitRoutable(t, "/counter", "node1", "node2")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var n atomic.Int64
	go func() {
		for ctx.Err() == nil && n.Load() < 50 {
			time.Sleep(5 * time.Millisecond)
		}
		_ = child2.Process.Kill()
	}()
	var bad502 atomic.Int64
	res, err := loadgen.Run(ctx, loadgen.Options{
		Concurrency: 4, Duration: 2 * time.Second, Requests: 4000, Cookies: true,
		NewRequest: func(int) (*http.Request, error) {
			return http.NewRequest(http.MethodPost, r.url+"/counter/inc", strings.NewReader(strings.Repeat("x", 2000)))
		},
		Check: func(resp *http.Response, body []byte) error {
			n.Add(1)
			if resp.StatusCode == http.StatusBadGateway {
				if !strings.Contains(string(body), "request id") {
					return fmt.Errorf("502 without a request id: %s", body)
				}
				bad502.Add(1)
				return nil
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d: %s", resp.StatusCode, body)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("POST load across the kill: %v; 502 answers: %d", res, bad502.Load())
	if res.Failures != 0 {
		t.Fatalf("unexpected failures: %v", res.FirstErr)
	}
}

// TestFailoverGoesToBackupOwner: with the backup manager, a session whose node died goes to the
// node placement.Owners names as its backup, not to any node.
func TestFailoverGoesToBackupOwner(t *testing.T) {
	c := newCluster(t)
	names := []string{"node1", "node2", "node3", "node4", "node5"}
	for _, n := range names {
		c.addNode(n, nil)
	}
	r := c.addRouter(func(o *Options) { o.Replication, o.Backups = ReplicationBackup, 1 })
	r.waitRoutable(t, "/counter", names...)
	type user struct {
		client *http.Client
		id     string
	}
	var users []user
	for i := 0; i < 8; i++ {
		cl := newClient(t)
		_, node, body := get(t, cl, r.url+"/counter/inc", "X-Herd-Node", "node1")
		if node != "node1" {
			t.Fatalf("pinned session went to %s", node)
		}
		users = append(users, user{cl, decodeCounter(t, body).Session})
	}
	c.nodes["node1"].crash()
	survivors := names[1:]
	for i, u := range users {
		want := ""
		for _, o := range placement.Owners(u.id, survivors, 2) {
			want = o
			break
		}
		_, node, body := get(t, u.client, r.url+"/counter/get")
		if node != want {
			t.Fatalf("user %d: session %s failed over to %s, want backup owner %s (%s)", i, u.id, node, want, body)
		}
	}
}

// TestVersionsNewestForNewSessionsOwnForOld: new sessions go to the newest version of a
// parallel-deployed app; a session created on the old version fails over to a node serving it.
func TestVersionsNewestForNewSessionsOwnForOld(t *testing.T) {
	c := newCluster(t)
	shop := func(v string) membership.App { return membership.App{Name: "shop", Version: v, Context: "/counter"} }
	c.addNode("old", nil, shop("1"))
	c.addNode("new", nil, shop("2"))
	c.addNode("both", nil, shop("1"), shop("2"))
	r := c.addRouter(nil)
	r.waitRoutable(t, "/counter", "old", "new", "both")
	for i := 0; i < 8; i++ {
		if _, node, _ := get(t, newClient(t), r.url+"/counter/inc"); node == "old" {
			t.Fatal("a new session went to the node serving only version 1")
		}
	}
	user := newClient(t)
	if _, node, _ := get(t, user, r.url+"/counter/inc", "X-Herd-Node", "old"); node != "old" {
		t.Fatalf("pinned to old, served by %s", node)
	}
	c.nodes["old"].crash()
	for i := 0; i < 4; i++ {
		if _, node, body := get(t, user, r.url+"/counter/get"); node != "both" {
			t.Fatalf("version-1 session failed over to %q (%s), want the node serving version 1", node, body)
		}
	}
}

func TestLeastConnectionsAvoidsBusyNode(t *testing.T) {
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("slow"))
	})
	c := newCluster(t)
	c.addNode("node1", map[string]http.Handler{"/slow": slow},
		membership.App{Name: "counter", Context: "/counter"}, membership.App{Name: "slow", Context: "/slow"})
	c.addNode("node2", nil)
	c.addNode("node3", nil)
	r := c.addRouter(func(o *Options) { o.Settings.Policy = PolicyLeastConnections })
	r.waitRoutable(t, "/counter", "node1", "node2", "node3")
	done := make(chan struct{})
	for i := 0; i < 3; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			resp, err := newClient(t).Get(r.url + "/slow")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, 5*time.Second, "slow requests in flight on node1", func() error {
		if n := r.Table().lookup("node1").Inflight(); n != 3 {
			return fmt.Errorf("node1 has %d in flight", n)
		}
		return nil
	})
	counts := map[string]int{}
	for i := 0; i < 12; i++ {
		_, node, _ := get(t, newClient(t), r.url+"/counter/inc")
		counts[node]++
	}
	close(release)
	for i := 0; i < 3; i++ {
		<-done
	}
	if counts["node1"] != 0 || counts["node2"] == 0 || counts["node3"] == 0 {
		t.Fatalf("least-connections spread %v, want nothing on busy node1", counts)
	}
}

// TestSilentNodeInFlightMovesOn: a node that stops answering mid-request (a partition, a hung host)
// keeps the client waiting only until membership declares it dead; then the router abandons the
// attempt and, the request being idempotent, serves it from another node.
func TestSilentNodeInFlightMovesOn(t *testing.T) {
	c := newCluster(t)
	var hang atomic.Bool
	release := make(chan struct{})
	defer close(release)
	shop := membership.App{Name: "shop", Context: "/shop"}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("node%d", i)
		app := counterApp(name)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if name == "node3" && hang.Load() {
				select { // a silent node: no answer, the connection stays open
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			app.ServeHTTP(w, r)
		})
		c.addNode(name, map[string]http.Handler{"/shop": h}, shop)
	}
	r := c.addRouter(nil)
	r.waitRoutable(t, "/shop/inc", "node1", "node2", "node3")
	var client *http.Client
	for i := 0; i < 12 && client == nil; i++ {
		cl := newClient(t)
		if _, node, _ := get(t, cl, r.url+"/shop/inc"); node == "node3" {
			client = cl
		}
	}
	if client == nil {
		t.Fatal("no session landed on node3")
	}
	hang.Store(true)
	type answer struct {
		status int
		node   string
		took   time.Duration
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		status, node, _ := get(t, client, r.url+"/shop/get")
		done <- answer{status, node, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond)   // the request is waiting on node3
	_ = c.nodes["node3"].prov.Shutdown() // node3 falls silent in membership too
	select {
	case a := <-done:
		if a.status != http.StatusOK || a.node == "node3" || a.node == "" {
			t.Fatalf("request stuck on a silent node answered %d from %q", a.status, a.node)
		}
		t.Logf("request moved from silent node3 to %s after %v", a.node, a.took.Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("the request still waits on node3 15s later although membership declared it dead")
	}
}
