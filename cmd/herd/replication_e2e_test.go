package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/testapps"
)

// TestKillNodeKeepsSessions runs three real nodes and the router, each client incrementing its own
// session counter through the router, then kills -9 one node: every client keeps its session and
// its last acknowledged count, with no error, for each replication manager.
func TestKillNodeKeepsSessions(t *testing.T) {
	for _, manager := range []string{"delta", "backup"} {
		t.Run(manager, func(t *testing.T) { killNodeKeepsSessions(t, manager) })
	}
}

// e2eCluster is three real `herd node` processes serving the counter app and a `herd router`.
type e2eCluster struct {
	t        *testing.T
	nodes    []*proc
	dirs     []string
	addrs    []string
	gossip   []string // membership addresses of the nodes
	channels []string // cluster channel addresses of the nodes
	router   string
}

// startE2ECluster packs the counter app, starts the nodes (gossip, profile local, the given
// replication manager and mode) and the router, and waits until everything serves.
func startE2ECluster(t *testing.T, manager, mode string) *e2eCluster {
	data := packedCounter(t)
	gossip := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	var seeds []string
	for _, p := range gossip[:3] {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", p))
	}
	membership := func(port int) string {
		return fmt.Sprintf("  membership:\n    kind: gossip\n    profile: local\n    bind: 127.0.0.1:%d\n    seeds: [%s]\n",
			port, strings.Join(seeds, ", "))
	}
	c := &e2eCluster{t: t}
	for i := range 3 {
		chPort := freePort(t)
		cl := fmt.Sprintf("cluster:\n  name: e2e-repl\n  secret: e2e-cluster-secret-0123456789\n%s"+
			"  replication:\n    bind: 127.0.0.1:%d\n    manager: %s\n    mode: %s\n",
			membership(gossip[i]), chPort, manager, mode)
		c.gossip = append(c.gossip, fmt.Sprintf("127.0.0.1:%d", gossip[i]))
		c.channels = append(c.channels, fmt.Sprintf("127.0.0.1:%d", chPort))
		dir, addr := nodeDir(t, fmt.Sprintf("node%d", i+1), cl)
		if err := os.MkdirAll(filepath.Join(dir, "webapps"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "webapps", "counter.zip"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, startHerd(t, dir, "node", "--config", "herd.yaml"))
		c.dirs = append(c.dirs, dir)
		c.addrs = append(c.addrs, addr)
	}
	c.router = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	rdir := t.TempDir()
	rcfg := fmt.Sprintf("node:\n  name: router\n  http: 127.0.0.1:0\n  workDir: ./work\ncluster:\n  name: e2e-repl\n"+
		"  secret: e2e-cluster-secret-0123456789\n%s  replication:\n    manager: %s\nmanager:\n  token: ${HERD_TOKEN}\nrouter:\n  http: %s\n",
		membership(gossip[3]), manager, c.router)
	if err := os.WriteFile(filepath.Join(rdir, "herd.yaml"), []byte(rcfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startHerd(t, rdir, "router", "--config", "herd.yaml")
	for i := range c.addrs {
		c.waitNode(i)
	}
	waitHTTP(t, "http://"+c.router+"/counter/get", func(s int, _ string) bool { return s == 200 })
	return c
}

// waitNode waits until node i is ready and replicates to both peers.
func (c *e2eCluster) waitNode(i int) {
	a := c.addrs[i]
	waitHTTP(c.t, "http://"+a+"/readyz", func(s int, _ string) bool { return s == 200 })
	waitHTTP(c.t, "http://"+a+"/manager/api/stats", func(s int, b string) bool {
		return s == 200 && strings.Count(b, `"addr"`) == 2
	})
}

// restart starts node i again from its directory (after a kill).
func (c *e2eCluster) restart(i int) {
	c.nodes[i] = startHerd(c.t, c.dirs[i], "node", "--config", "herd.yaml")
}

func killNodeKeepsSessions(t *testing.T, manager string) {
	c := startE2ECluster(t, manager, "pooled")
	nodes, addrs, routerAddr := c.nodes, c.addrs, c.router
	type reply struct {
		Node  string
		Count int
	}
	type user struct {
		c     *http.Client
		node  string
		count int
	}
	inc := func(u *user) (reply, error) {
		resp, err := u.c.Get("http://" + routerAddr + "/counter/inc")
		if err != nil {
			return reply{}, err
		}
		defer resp.Body.Close()
		var r reply
		if resp.StatusCode != 200 {
			return r, fmt.Errorf("status %d", resp.StatusCode)
		}
		return r, json.NewDecoder(resp.Body).Decode(&r)
	}
	users := make([]*user, 24)
	for i := range users {
		jar, _ := cookiejar.New(nil)
		users[i] = &user{c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
		for range 1 + i%3 {
			r, err := inc(users[i])
			if err != nil || r.Count != users[i].count+1 {
				t.Fatalf("user %d before the kill: %+v %v", i, r, err)
			}
			users[i].node, users[i].count = r.Node, r.Count
		}
	}
	victim := 0
	for i, u := range users { // kill the node that serves user 0
		if i == 0 {
			victim = int(u.node[len(u.node)-1] - '1')
		}
	}
	onVictim := 0
	for _, u := range users {
		if u.node == fmt.Sprintf("node%d", victim+1) {
			onVictim++
		}
	}
	if err := nodes[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		r, err := inc(u)
		if err != nil {
			t.Fatalf("user %d after killing node%d: %v", i, victim+1, err)
		}
		if r.Count != u.count+1 {
			t.Fatalf("user %d (was on %s, now %s): count %d after the kill, acknowledged %d before", i, u.node, r.Node, r.Count, u.count)
		}
		if r.Node == fmt.Sprintf("node%d", victim+1) {
			t.Fatalf("user %d served by the killed node", i)
		}
		u.node, u.count = r.Node, r.Count
	}
	// herd status shows replication to the surviving peer.
	survivor := addrs[(victim+1)%3]
	out, err := exec.Command(herdBin, "status", "--node", survivor, "--token", e2eToken).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "REPLICATION TO") || !strings.Contains(string(out), "pooled "+manager) ||
		!strings.Contains(string(out), "FARM") {
		t.Fatalf("herd status: %v\n%s", err, out)
	}
	// And once more: the failed-over sessions now live (and replicate) on their new nodes.
	for i, u := range users {
		if r, err := inc(u); err != nil || r.Count != u.count+1 {
			t.Fatalf("user %d second request after the kill: %+v %v", i, r, err)
		}
	}
	t.Logf("%s manager: %d of %d sessions were on the killed node; all kept their counts", manager, onVictim, len(users))
}

// packedCounter returns the counter sample packed by `herd pack`, as a new user would make it.
func packedCounter(t *testing.T) []byte {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "counter.zip")
	if out, err := exec.Command(herdBin, "pack", filepath.Join(testapps.RepoRoot(), "webapps", "counter"), "-o", bundle).CombinedOutput(); err != nil {
		t.Fatalf("herd pack: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
