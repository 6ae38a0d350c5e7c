package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/config"
	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/membership"
)

// tlog sends log lines to t.Log until the test ends: memberlist's probe goroutines may still log a line
// after its Shutdown returned, and testing panics on a Log after the test completed.
type tlog struct {
	t    *testing.T
	done *atomic.Bool
}

func newTlog(t *testing.T) tlog {
	done := new(atomic.Bool)
	t.Cleanup(func() { done.Store(true) })
	return tlog{t: t, done: done}
}

func (w tlog) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// freePort is testapps.FreePort.
func freePort(t *testing.T) int {
	return testapps.FreePort(t)
}

// gossipConfig is node i of a loopback gossip cluster whose members bind the given ports.
func gossipConfig(t *testing.T, i int, ports []int) *config.Config {
	t.Helper()
	dir := t.TempDir()
	var seeds []string
	for _, p := range ports {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", p))
	}
	yaml := fmt.Sprintf(`node:
  name: node%d
  http: 127.0.0.1:0
  deployDir: %s
  workDir: %s
cluster:
  name: test
  secret: cluster-test-secret-0123456789
  membership:
    kind: gossip
    profile: local
    bind: 127.0.0.1:%d
    seeds: [%s]
  replication:
    bind: 127.0.0.1:%d
manager:
  token: test-token
`, i+1, filepath.Join(dir, "webapps"), filepath.Join(dir, "work"), ports[i], strings.Join(seeds, ", "), freePort(t))
	cfg, err := config.Parse([]byte(yaml), config.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startNode(t *testing.T, cfg *config.Config) *Node {
	t.Helper()
	n, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(newTlog(t), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStandaloneNode(t *testing.T) {
	cfg := config.Default()
	cfg.Node.HTTP = "127.0.0.1:0"
	cfg.Node.DeployDir = filepath.Join(t.TempDir(), "webapps")
	cfg.Node.WorkDir = filepath.Join(t.TempDir(), "work")
	n := startNode(t, &cfg)
	resp, err := http.Get("http://" + n.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("standalone readyz %d", resp.StatusCode)
	}
	if n.Members() != nil {
		t.Fatal("a standalone node reports cluster members")
	}
}

func TestNodesJoinAndPublishApps(t *testing.T) {
	ports := []int{freePort(t), freePort(t)}
	a := startNode(t, gossipConfig(t, 0, ports))
	b := startNode(t, gossipConfig(t, 1, ports))
	waitFor(t, "both members alive on both nodes", func() bool {
		return len(a.Members()) == 2 && len(b.Members()) == 2
	})
	// An app mounted on node1 shows up in node1's record as node2 sees it.
	if err := a.Server().Mount("shop", "/shop", http.NotFoundHandler()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node2 to see node1's app", func() bool {
		for _, m := range b.Members() {
			if m.Name == "node1" && len(m.Meta.Apps) == 1 && m.Meta.Apps[0].Context == "/shop" {
				return m.Role == membership.RoleNode && m.HTTPAddr == a.Addr()
			}
		}
		return false
	})
	infos := b.memberList()
	if len(infos) != 2 || infos[0].Name != "node1" || infos[1].Local != true {
		t.Fatalf("manager API members: %+v", infos)
	}
	found := false
	for _, e := range b.Server().Events() {
		found = found || (e.Type == "member.join" && e.Member == "node1")
	}
	if !found {
		t.Fatalf("no member.join event for node1 on node2: %+v", b.Server().Events())
	}
	// A graceful shutdown tells the peer at once.
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node2 to drop node1", func() bool { return len(b.Members()) == 1 })
}

func TestReloadAppliesReloadableKeysAndRefusesOthers(t *testing.T) {
	cfg := config.Default()
	cfg.Node.HTTP = "127.0.0.1:0"
	cfg.Node.DeployDir = ""
	cfg.Node.WorkDir = filepath.Join(t.TempDir(), "work")
	cfg.Manager.Token = "first-token"
	n := startNode(t, &cfg)
	status := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+n.Addr()+"/manager/api/apps", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status("first-token") != 200 {
		t.Fatal("initial token refused")
	}
	next := cfg.Clone()
	next.Manager.Token = "second-token"
	next.Node.AccessLog = "combined"
	if err := n.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if status("first-token") != http.StatusUnauthorized || status("second-token") != 200 {
		t.Fatal("the reloaded token is not the one in force")
	}
	bad := next.Clone()
	bad.Node.Name = "renamed"
	bad.Node.HTTP = "127.0.0.1:1"
	err := n.Reload(&bad)
	if err == nil || !strings.Contains(err.Error(), "node.name") || !strings.Contains(err.Error(), "node.http") {
		t.Fatalf("reload of fixed keys: %v", err)
	}
	if status("second-token") != 200 {
		t.Fatal("a refused reload changed the running config")
	}
}

func TestClusteredNodeReplicatesAndReloadsMode(t *testing.T) {
	ports := []int{freePort(t), freePort(t)}
	a := startNode(t, gossipConfig(t, 0, ports))
	b := startNode(t, gossipConfig(t, 1, ports))
	waitFor(t, "replication ready with one peer on both nodes", func() bool {
		return a.ready() == nil && b.ready() == nil &&
			len(a.Replication().Stats().Peers) == 1 && len(b.Replication().Stats().Peers) == 1
	})
	s, err := a.Sessions().Create("shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("cart", []byte("2 items")); err != nil {
		t.Fatal(err)
	}
	s.Commit() // pooled by default: acknowledged by node2 when Commit returns
	if got, ok := b.Sessions().Get(s.ID()); !ok || got.Version() != 1 {
		t.Fatal("session not on node2 after a pooled commit")
	}
	if a.Replication().Mode() != "pooled" {
		t.Fatalf("default mode %q", a.Replication().Mode())
	}
	next := a.cfg.Clone()
	next.Cluster.Replication.Mode = "async"
	if err := a.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if a.Replication().Mode() != "async" {
		t.Fatalf("mode after reload %q", a.Replication().Mode())
	}
	bad := next.Clone()
	bad.Cluster.Replication.Bind = "127.0.0.1:1"
	if err := a.Reload(&bad); err == nil || !strings.Contains(err.Error(), "cluster.replication.bind") {
		t.Fatalf("reload of the channel port: %v", err)
	}
	stats := a.stats()["replication"]
	if stats == nil {
		t.Fatal("no replication section in the manager stats")
	}
	// Prometheus: membership, farm and replication series on the node's /metrics.
	req, _ := http.NewRequest("GET", "http://"+a.Addr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`herd_membership_members{role="node",state="alive"} 2`, "herd_membership_events_total",
		`herd_farm_ready 1`, `herd_replication_peers 1`, `herd_replication_changes_acked_total{peer="node2"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
