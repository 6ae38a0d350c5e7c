package router

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
)

type counterReply struct {
	Node    string `json:"node"`
	Count   int    `json:"count"`
	Session string `json:"session"`
}

func decodeCounter(t testing.TB, body string) counterReply {
	t.Helper()
	var c counterReply
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("counter reply %q: %v", body, err)
	}
	return c
}

func threeNodes(t *testing.T, mutate func(*Options)) (*cluster, *testRouter) {
	c := newCluster(t)
	for i := 1; i <= 3; i++ {
		c.addNode(fmt.Sprintf("node%d", i), nil)
	}
	r := c.addRouter(mutate)
	r.waitRoutable(t, "/counter/inc", "node1", "node2", "node3")
	return c, r
}

func TestStickySessionsStayOnTheirNode(t *testing.T) {
	_, r := threeNodes(t, nil)
	seen := map[string]int{}
	for u := 0; u < 6; u++ {
		client := newClient(t)
		var node string
		for i := 1; i <= 5; i++ {
			status, _, body := get(t, client, r.url+"/counter/inc")
			if status != http.StatusOK {
				t.Fatalf("user %d request %d: %d %s", u, i, status, body)
			}
			c := decodeCounter(t, body)
			if i == 1 {
				node = c.Node
				seen[node]++
			}
			if c.Node != node || c.Count != i {
				t.Fatalf("user %d request %d went to %s with count %d, want %s and %d", u, i, c.Node, c.Count, node, i)
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("round-robin spread 6 new sessions over %v, want all 3 nodes", seen)
	}
}

func TestNewAppBecomesRoutableAndUndeployDropsIt(t *testing.T) {
	c := newCluster(t)
	n1 := c.addNode("node1", map[string]http.Handler{"/fresh": plainApp("node1")})
	c.addNode("node2", nil)
	r := c.addRouter(nil)
	r.waitRoutable(t, "/counter", "node1", "node2")
	client := newClient(t)
	if status, _, body := get(t, client, r.url+"/fresh/x"); status != http.StatusNotFound ||
		!strings.Contains(body, "no node serves this path") || !strings.Contains(body, "request id") {
		t.Fatalf("before deploy: %d %q, want 404 naming the problem", status, body)
	}
	n1.setApps(t, membership.App{Name: "counter", Context: "/counter"}, membership.App{Name: "fresh", Context: "/fresh"})
	waitFor(t, gossipSettle, "/fresh to become routable", func() error {
		if status, node, _ := get(t, client, r.url+"/fresh/x"); status != http.StatusOK || node != "node1" {
			return fmt.Errorf("got %d from %q", status, node)
		}
		return nil
	})
	n1.setApps(t, membership.App{Name: "fresh", Context: "/fresh"}) // counter undeployed from node1
	waitFor(t, gossipSettle, "node1 to drop out of /counter", func() error {
		if c := r.Table().match("/counter"); c == nil || len(c.backends) != 1 {
			return fmt.Errorf("table has %v", c)
		}
		return nil
	})
	for i := 0; i < 4; i++ {
		if status, node, _ := get(t, newClient(t), r.url+"/counter/get"); status != http.StatusOK || node != "node2" {
			t.Fatalf("after undeploy: %d from %s, want node2", status, node)
		}
	}
}

func TestDeadAndLeavingNodesDropOut(t *testing.T) {
	c, r := threeNodes(t, nil)
	c.nodes["node3"].crash() // silent: membership must detect it
	waitFor(t, 8*time.Second, "dead node3 to leave the table", func() error {
		if r.Table().lookup("node3") != nil {
			return fmt.Errorf("node3 still listed")
		}
		return nil
	})
	if err := c.nodes["node2"].prov.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, gossipSettle, "node2 to be leaving", func() error {
		if b := r.Table().lookup("node2"); b != nil && !b.Draining() {
			return fmt.Errorf("node2 not draining")
		}
		return nil
	})
	for i := 0; i < 4; i++ {
		if status, node, body := get(t, newClient(t), r.url+"/counter/get"); status != http.StatusOK || node != "node1" {
			t.Fatalf("new session went to %q (%d %s), want node1", node, status, body)
		}
	}
	r.clock.Advance(3 * time.Second) // past the drain timeout: reconcile forgets node2
	waitFor(t, gossipSettle, "leaving node2 to leave the table", func() error {
		if r.Table().lookup("node2") != nil {
			return fmt.Errorf("node2 still listed")
		}
		return nil
	})
}

func TestDrainKeepsStickySessionsUntilTimeout(t *testing.T) {
	c, r := threeNodes(t, nil)
	// A user with a session on node2.
	user := newClient(t)
	status, node, body := get(t, user, r.url+"/counter/inc", "X-Herd-Node", "node2")
	if status != http.StatusOK || node != "node2" {
		t.Fatalf("pinned request: %d %s %s", status, node, body)
	}
	c.nodes["node2"].setDraining(t, true)
	waitFor(t, gossipSettle, "node2 draining in the table", func() error {
		if b := r.Table().lookup("node2"); b == nil || !b.Draining() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	for i := 0; i < 6; i++ {
		if _, node, _ := get(t, newClient(t), r.url+"/counter/inc"); node == "node2" {
			t.Fatal("a new session went to draining node2")
		}
		st, node, body := get(t, user, r.url+"/counter/inc")
		if c := decodeCounter(t, body); st != http.StatusOK || node != "node2" || c.Count != i+2 {
			t.Fatalf("sticky request during drain: %d on %s count %d, want node2 count %d", st, node, c.Count, i+2)
		}
	}
	r.clock.Advance(3 * time.Second) // drain timeout (2s) over: the session fails over
	_, node, body = get(t, user, r.url+"/counter/inc")
	if node == "node2" || node == "" {
		t.Fatalf("after the drain timeout the sticky request still went to %q (%s)", node, body)
	}
	_, again, _ := get(t, user, r.url+"/counter/inc")
	if again != node {
		t.Fatalf("after failover the session moved again: %s then %s (the node must rebind the cookie)", node, again)
	}
}
