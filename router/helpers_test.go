package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/gossip"
	"github.com/herdproject/herd/server"
	"github.com/herdproject/herd/session"
)

const testSecret = "router-test-secret-0123456789abcdef"

// childEnv makes the test binary run a node (see runChildNode) instead of the tests.
const childEnv = "HERD_ROUTER_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildNode())
	}
	os.Exit(m.Run())
}

// tLogger sends slog output to t.Log.
func tLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gossipSettle bounds the wait for a member's update (apps, draining, leaving) to reach the router.
// It spreads by gossip in tens of milliseconds, but gossip is UDP and best effort: a message lost on
// a loaded machine is made good by the next push/pull, every 5s in the local profile, with a random
// peer, which can take more than one round. A CI run once missed a draining flag for 5s.
const gossipSettle = 15 * time.Second

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testClock is a clock the test can move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// counterApp is the sample counter: /inc increments a counter in the session, /get reads it; it
// answers {"node","count","session"} and an X-Node header. Other paths below it answer the same
// without touching the count.
func counterApp(node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := session.FromRequest(r).Session(true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n := 0
		if v, ok := s.Get("count"); ok {
			n, _ = strconv.Atoi(string(v))
		}
		if strings.HasSuffix(r.URL.Path, "/inc") {
			n++
			if err := s.Set("count", []byte(strconv.Itoa(n))); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("X-Node", node)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"node":%q,"count":%d,"session":%q}`, node, n, s.ID())
	})
}

// plainApp answers the node name without a session.
func plainApp(node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Node", node)
		_, _ = io.WriteString(w, node)
	})
}

// testNode is a real herd node: a server.Server with its session manager and (optionally) a gossip
// membership provider announcing its apps.
type testNode struct {
	name string
	srv  *server.Server
	prov *gossip.Provider
	apps []membership.App
	stop sync.Once
}

func (n *testNode) Addr() string { return n.srv.Addr() }

// setApps announces apps in the membership record.
func (n *testNode) setApps(t testing.TB, apps ...membership.App) {
	t.Helper()
	n.apps = apps
	if err := n.prov.UpdateLocal(func(m *membership.Member) { m.Meta.Apps = apps }); err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) setDraining(t testing.TB, on bool) {
	t.Helper()
	if err := n.prov.UpdateLocal(func(m *membership.Member) { m.Meta.Draining = on }); err != nil {
		t.Fatal(err)
	}
}

// crash stops the node without telling the cluster: HTTP server closed at once, gossip silent.
func (n *testNode) crash() {
	n.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_ = n.srv.Shutdown(ctx)
		if n.prov != nil {
			_ = n.prov.Shutdown()
		}
	})
}

// cluster is a set of real nodes joined by gossip, plus routers that join it.
type cluster struct {
	t     testing.TB
	name  string
	seed  string
	nodes map[string]*testNode
}

var clusterSeq atomic.Int64

func newCluster(t testing.TB) *cluster {
	return &cluster{t: t, name: fmt.Sprintf("rt-%d-%d", os.Getpid()%10000, clusterSeq.Add(1)),
		nodes: map[string]*testNode{}}
}

// gossipConfig is the fast local profile for this cluster.
func (c *cluster) gossipConfig(local membership.Member) gossip.Config {
	cfg := gossip.DefaultLocalConfig()
	cfg.Cluster, cfg.Secret, cfg.Local = c.name, testSecret, local
	cfg.Logger = slog.New(slog.DiscardHandler)
	if c.seed != "" {
		cfg.Seeds = []string{c.seed}
	}
	return cfg
}

// addNode starts a node serving the counter app at /counter (plus mounts) and announcing apps
// (default: counter at /counter).
func (c *cluster) addNode(name string, mounts map[string]http.Handler, apps ...membership.App) *testNode {
	t := c.t
	t.Helper()
	sm, err := session.NewManager(session.Options{Route: name, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Name: name, HTTPAddr: "127.0.0.1:0", WorkDir: t.TempDir(),
		Sessions: sm, ShutdownTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler),
		Valves: server.ValveOptions{AccessLogOut: io.Discard}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Mount("counter", "/counter", counterApp(name)); err != nil {
		t.Fatal(err)
	}
	for ctxPath, h := range mounts {
		if err := srv.Mount(strings.Trim(ctxPath, "/"), ctxPath, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(apps) == 0 {
		apps = []membership.App{{Name: "counter", Context: "/counter"}}
	}
	n := &testNode{name: name, srv: srv, apps: apps}
	t.Cleanup(n.crash)
	local := membership.Member{Name: name, Route: name, Role: membership.RoleNode, HTTPAddr: srv.Addr(),
		Meta: membership.Meta{Apps: apps}}
	p, err := gossip.New(c.gossipConfig(local))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.prov = p
	if c.seed == "" {
		c.seed = p.Addr()
	}
	c.nodes[name] = n
	return n
}

// testRouter is a started router with its membership provider.
type testRouter struct {
	*Router
	prov  *gossip.Provider
	url   string
	clock *testClock
}

// addRouter starts a router that joins the cluster; mutate adjusts its options.
func (c *cluster) addRouter(mutate func(*Options)) *testRouter {
	t := c.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := membership.Member{Name: "router-" + strconv.FormatInt(clusterSeq.Add(1), 10), Role: membership.RoleRouter,
		HTTPAddr: ln.Addr().String()}
	p, err := gossip.New(c.gossipConfig(local))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	tr := startRouter(t, ln, p, mutate)
	tr.prov = p
	return tr
}

// startRouter starts a router on ln with membership m (nil: static backends only).
func startRouter(t testing.TB, ln net.Listener, m Membership, mutate func(*Options)) *testRouter {
	t.Helper()
	clock := &testClock{}
	opts := Options{Listener: ln, Logger: tLogger(t), Clock: clock.Now, ReconcileInterval: 200 * time.Millisecond,
		Settings: Settings{HealthInterval: time.Hour, DrainTimeout: 2 * time.Second}}
	if m != nil {
		opts.Members = m
	}
	if mutate != nil {
		mutate(&opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("router shutdown: %v", err)
		}
	})
	// The first round of health checks runs at start; a test that stops a node right away must not
	// race it (a check that meets the node stopping marks it unhealthy before the test's request).
	// A node that joins the table after that round is not probed again for an hour (HealthInterval),
	// so waiting for the round to end is enough.
	waitFor(t, 5*time.Second, "the router's first round of health checks", func() error {
		if r.rounds.Load() == 0 {
			return errors.New("first round still running")
		}
		return nil
	})
	return &testRouter{Router: r, url: "http://" + r.Addr(), clock: clock}
}

// waitRoutable waits until the router's table lists the named nodes for path.
func (tr *testRouter) waitRoutable(t testing.TB, path string, names ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, "router table to list "+strings.Join(names, ",")+" at "+path, func() error {
		c := tr.Table().match(path)
		if c == nil {
			return errors.New("no route")
		}
		have := map[string]bool{}
		for _, b := range c.backends {
			have[b.Name] = true
		}
		for _, n := range names {
			if !have[n] {
				return fmt.Errorf("%s missing (have %v)", n, have)
			}
		}
		return nil
	})
}

// newClient is an HTTP client with its own cookie jar and connection pool, never a proxy.
func newClient(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get does a GET with optional header pairs and returns status, X-Node and body.
func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Node"), string(body)
}

// child process node --------------------------------------------------------------------------

// startChild runs a node in a child process (the test binary in child mode) that serves the
// counter app and joins the cluster through the seed; it returns the process and its HTTP address.
func (c *cluster) startChild(name string) (*exec.Cmd, string) {
	t := c.t
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_NAME="+name, "CHILD_CLUSTER="+c.name, "CHILD_SEED="+c.seed,
		"CHILD_DIR="+t.TempDir()) // the parent's: a child killed with -9 leaves nothing behind
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits when the parent goes away
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child %s did not start: %q %v", name, line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
}

// runChildNode is the child side of startChild.
func runChildNode() int {
	name := os.Getenv("CHILD_NAME")
	c := &cluster{name: os.Getenv("CHILD_CLUSTER"), seed: os.Getenv("CHILD_SEED")}
	sm, err := session.NewManager(session.Options{Route: name})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := server.New(server.Options{Name: name, HTTPAddr: "127.0.0.1:0", WorkDir: os.Getenv("CHILD_DIR"), Sessions: sm,
		Logger: slog.New(slog.DiscardHandler), Valves: server.ValveOptions{AccessLogOut: io.Discard}})
	if err == nil {
		err = srv.Mount("counter", "/counter", counterApp(name))
	}
	if err == nil {
		err = srv.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	local := membership.Member{Name: name, Route: name, HTTPAddr: srv.Addr(),
		Meta: membership.Meta{Apps: []membership.App{{Name: "counter", Context: "/counter"}}}}
	p, err := gossip.New(c.gossipConfig(local))
	if err == nil {
		err = p.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin (or kills us)
	_ = p.Shutdown()
	_ = srv.Shutdown(context.Background())
	return 0
}

func appAt(name, ctx string) membership.App { return membership.App{Name: name, Context: ctx} }
