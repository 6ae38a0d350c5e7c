package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herdproject/herd/internal/testapps"
)

// netTopo is a private layer-2 segment built for one test: a hub namespace holding a bridge, and one
// namespace per host with a veth plugged into it (10.77.0.<i>/24). Nothing is created in the
// namespace the test runs in; deleting the namespaces removes every link.
type netTopo struct {
	t      *testing.T
	prefix string
	hosts  int
}

func (n *netTopo) hub() string       { return n.prefix + "-hub" }
func (n *netTopo) host(i int) string { return fmt.Sprintf("%s-h%d", n.prefix, i) }
func (n *netTopo) addr(i int) string { return fmt.Sprintf("10.77.0.%d", i) }
func (n *netTopo) port(i int) string { return fmt.Sprintf("p%d", i) }
func (n *netTopo) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// newTopo builds the segment, or skips the test where namespaces cannot be made (not root, no ip).
func newTopo(t *testing.T, hosts int) *netTopo {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s command (iproute2)", tool)
		}
	}
	n := &netTopo{t: t, prefix: fmt.Sprintf("herd%d", os.Getpid()%100000), hosts: hosts}
	if err := n.ip("netns", "add", n.hub()); err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(n.down)
	steps := [][]string{
		{"-n", n.hub(), "link", "set", "lo", "up"},
		{"-n", n.hub(), "link", "add", "br0", "type", "bridge"},
		{"-n", n.hub(), "link", "set", "br0", "up"},
	}
	for i := 1; i <= hosts; i++ {
		h := n.host(i)
		if err := n.ip("netns", "add", h); err != nil {
			t.Fatal(err)
		}
		steps = append(steps,
			[]string{"-n", h, "link", "set", "lo", "up"},
			[]string{"link", "add", "eth0", "netns", h, "type", "veth", "peer", "name", n.port(i), "netns", n.hub()},
			[]string{"-n", n.hub(), "link", "set", n.port(i), "master", "br0", "up"},
			[]string{"-n", h, "addr", "add", n.addr(i) + "/24", "dev", "eth0"},
			[]string{"-n", h, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := n.ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *netTopo) down() {
	for i := 1; i <= n.hosts; i++ {
		_ = n.ip("netns", "del", n.host(i))
	}
	_ = n.ip("netns", "del", n.hub())
}

// cut isolates host i at the switch (its port stops forwarding; its link stays up); heal undoes it.
func (n *netTopo) cut(i int) error {
	return n.ip("netns", "exec", n.hub(), "bridge", "link", "set", "dev", n.port(i), "state", "0")
}

func (n *netTopo) heal(i int) error {
	return n.ip("netns", "exec", n.hub(), "bridge", "link", "set", "dev", n.port(i), "state", "3")
}

// dialer makes TCP connections from inside host i's namespace: one OS thread entered into it creates
// every socket (a socket keeps the namespace it was made in).
func (n *netTopo) dialer(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	type req struct {
		addr  string
		reply chan any
	}
	reqs := make(chan req)
	f, err := os.Open("/run/netns/" + n.host(i))
	if err != nil {
		n.t.Fatal(err)
	}
	ready := make(chan error, 1)
	stop := make(chan struct{})
	n.t.Cleanup(func() { close(stop) })
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		ready <- err
		if err != nil {
			return
		}
		for {
			select {
			case <-stop:
				return
			case r := <-reqs:
				c, err := net.DialTimeout("tcp", r.addr, 3*time.Second)
				if err != nil {
					r.reply <- err
				} else {
					r.reply <- c
				}
			}
		}
	}()
	if err := <-ready; err != nil {
		n.t.Fatalf("setns: %v", err)
	}
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		r := req{addr: addr, reply: make(chan any, 1)}
		select {
		case reqs <- r:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case v := <-r.reply:
			if err, ok := v.(error); ok {
				return nil, err
			}
			return v.(net.Conn), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// startIn runs herd in host i's namespace.
func (n *netTopo) startIn(i int, dir string, args ...string) *proc {
	return startProc(n.t, dir, "ip", append([]string{"netns", "exec", n.host(i), herdBin}, args...)...)
}

// TestPartitionHeal cuts one node off its cluster under session load and heals it: clients keep their
// sessions through the router, the cut node rejoins by itself, and no session is rolled back by the
// stale copies it held (versions win).
func TestPartitionHeal(t *testing.T) {
	topo := newTopo(t, 4) // hosts 1-3: nodes, host 4: the router and the clients
	data := packedCounter(t)
	seeds := fmt.Sprintf("[%s:7946, %s:7946, %s:7946]", topo.addr(1), topo.addr(2), topo.addr(3))
	cluster := func(i int) string {
		return fmt.Sprintf("cluster:\n  name: part\n  secret: partition-test-secret-0123456789\n"+
			"  membership:\n    kind: gossip\n    profile: local\n    bind: %s:7946\n    seeds: %s\n"+
			"  replication:\n    bind: %s:4001\n    mode: pooled\n", topo.addr(i), seeds, topo.addr(i))
	}
	var addrs []string
	var farmDir string // node1's farm watch dir
	for i := 1; i <= 3; i++ {
		dir := t.TempDir()
		addr := topo.addr(i) + ":8081"
		farm := ""
		if i == 1 {
			farm = "  farm:\n    watchDir: ./farm\n"
			farmDir = filepath.Join(dir, "farm")
		}
		cfg := fmt.Sprintf("node:\n  name: node%d\n  http: %s\n  deployDir: ./webapps\n  workDir: ./work\nmanager:\n  token: ${HERD_TOKEN}\n%s%s",
			i, addr, cluster(i), farm)
		if err := os.WriteFile(filepath.Join(dir, "herd.yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "webapps"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "webapps", "counter.zip"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		topo.startIn(i, dir, "node", "--config", "herd.yaml")
		addrs = append(addrs, addr)
	}
	rdir := t.TempDir()
	router := topo.addr(4) + ":8080"
	rcfg := fmt.Sprintf("node:\n  name: router\n  http: %s:8090\n  workDir: ./work\nmanager:\n  token: ${HERD_TOKEN}\nrouter:\n  http: %s\n%s",
		topo.addr(4), router, strings.Replace(cluster(4), "  replication:\n    bind: "+topo.addr(4)+":4001\n    mode: pooled\n", "", 1))
	if err := os.WriteFile(filepath.Join(rdir, "herd.yaml"), []byte(rcfg), 0o644); err != nil {
		t.Fatal(err)
	}
	topo.startIn(4, rdir, "router", "--config", "herd.yaml")

	dial := topo.dialer(4)
	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: dial}}
	}
	admin := newClient()
	get := func(c *http.Client, url string, auth bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+e2eToken)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	aliveNodes := func(addr string) int {
		_, b := get(admin, "http://"+addr+"/manager/api/members", true)
		var ms []struct{ Role, State string }
		_ = json.Unmarshal([]byte(b), &ms)
		n := 0
		for _, m := range ms {
			if m.Role == "node" && m.State == "alive" {
				n++
			}
		}
		return n
	}
	for _, a := range addrs {
		waitUntil(a+" ready with 3 nodes", 60*time.Second, func() bool {
			s, _ := get(admin, "http://"+a+"/readyz", false)
			return s == 200 && aliveNodes(a) == 3
		})
	}
	waitUntil("the router serving", 30*time.Second, func() bool {
		s, _ := get(admin, "http://"+router+"/counter/get", false)
		return s == 200
	})

	type user struct {
		c     *http.Client
		node  string
		count int
	}
	inc := func(u *user) error {
		s, b := get(u.c, "http://"+router+"/counter/inc", false)
		var r struct {
			Node  string
			Count int
		}
		if s != 200 || json.Unmarshal([]byte(b), &r) != nil {
			return fmt.Errorf("status %d: %s", s, b)
		}
		if r.Count != u.count+1 {
			return fmt.Errorf("count %d after %d acknowledged (node %s, was %s)", r.Count, u.count, r.Node, u.node)
		}
		u.node, u.count = r.Node, r.Count
		return nil
	}
	users := make([]*user, 12)
	for i := range users {
		users[i] = &user{c: newClient()}
		for range 3 {
			if err := inc(users[i]); err != nil {
				t.Fatalf("user %d before the cut: %v", i, err)
			}
		}
	}

	// Cut node3 off; keep every user busy through the router while it is away.
	if err := topo.cut(3); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	waitUntil("node1 to see node3 gone", 20*time.Second, func() bool { return aliveNodes(addrs[0]) == 2 })
	t.Logf("node3 declared gone %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if err := inc(u); err != nil {
					errs <- fmt.Errorf("user %d during the partition: %v", i, err)
					return
				}
			}
		}()
	}
	// A bundle farmed while node3 is cut off: the two others run it now, node3 after the heal.
	hello, err := os.ReadFile(testapps.Bundle(t, "hello", "hello.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(farmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(farmDir, ".hello.tmp"), hello, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(farmDir, ".hello.tmp"), filepath.Join(farmDir, "hello.zip")); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs[:2] {
		waitUntil(a+" to serve the bundle farmed during the partition", 30*time.Second, func() bool {
			s, _ := get(admin, "http://"+a+"/hello/", false)
			return s == 200
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Heal: node3 comes back by itself, catches up, and nothing is rolled back.
	if err := topo.heal(3); err != nil {
		t.Fatal(err)
	}
	healAt := time.Now()
	for _, a := range addrs {
		waitUntil(a+" to see all three nodes again", 60*time.Second, func() bool { return aliveNodes(a) == 3 })
	}
	t.Logf("all nodes see each other %v after the heal", time.Since(healAt).Round(time.Millisecond))
	versions := func(addr string) map[string]uint64 {
		_, b := get(admin, "http://"+addr+"/manager/api/sessions", true)
		var list []struct {
			ID      string
			Version uint64
		}
		_ = json.Unmarshal([]byte(b), &list)
		out := map[string]uint64{}
		for _, s := range list {
			out[s.ID] = s.Version
		}
		return out
	}
	waitUntil("node3 to hold every session at its latest version", 30*time.Second, func() bool {
		v1, v3 := versions(addrs[0]), versions(addrs[2])
		if len(v1) < len(users) {
			return false
		}
		for id, v := range v1 {
			if v3[id] != v {
				return false
			}
		}
		return true
	})
	for i, u := range users {
		if err := inc(u); err != nil {
			t.Fatalf("user %d after the heal: %v", i, err)
		}
	}
	waitUntil("node3 to catch up with the farm", 30*time.Second, func() bool {
		s, _ := get(admin, "http://"+addrs[2]+"/hello/", false)
		return s == 200
	})
}
