package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/gossip"
	"github.com/herdproject/herd/session"
)

const (
	testCluster = "repl-test"
	testSecret  = "0123456789abcdef-replication-test"
)

// tnode is one in-process member: a real session manager behind a real HTTP server, a real channel
// and real gossip membership on 127.0.0.1.
type tnode struct {
	t    testing.TB
	name string
	sm   *session.Manager
	ch   *channel.Channel
	mem  *gossip.Provider
	rep  *Replicator
	srv  *httptest.Server
	once sync.Once
}

// counterHandler is the sample counter: /inc adds one to "n" (with an optional pad attribute of the
// given size), /get reads it.
func counterHandler(pad int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := session.FromRequest(r)
		switch r.URL.Path {
		case "/inc":
			s, err := b.Session(true)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			v, _ := s.Get("n")
			n, _ := strconv.Atoi(string(v))
			n++
			set := map[string][]byte{"n": []byte(strconv.Itoa(n))}
			if pad > 0 { // a kilobyte rewritten by every request: it travels each time
				v := []byte(strings.Repeat("x", pad))
				copy(v, strconv.Itoa(n))
				set["pad"] = v
			}
			if err := s.Update(set, nil); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprint(w, n)
		case "/get":
			s, _ := b.Session(false)
			if s == nil {
				http.Error(w, "no session", http.StatusNotFound)
				return
			}
			v, _ := s.Get("n")
			fmt.Fprint(w, string(v))
		case "/style.css":
			s, _ := b.Session(false)
			fmt.Fprint(w, "body{} /* ", s == nil, " */")
		case "/logout":
			b.Invalidate()
		default:
			http.NotFound(w, r)
		}
	})
}

type clusterOpts struct {
	off  bool // no replicator: the "replication off" baseline of the benchmarks
	cfg  func(*Config)
	sess func(*session.Options)
	pad  int
}

// newNode starts a member; seeds are gossip addresses of running members.
func newNode(t testing.TB, name string, o clusterOpts, seeds ...string) *tnode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	n, err := buildNode(name, o, log, seeds...)
	if err != nil {
		t.Fatal(err)
	}
	n.t = t
	t.Cleanup(n.stop)
	return n
}

// buildNode starts a member logging to log; the caller stops it.
func buildNode(name string, o clusterOpts, log *slog.Logger, seeds ...string) (*tnode, error) {
	log = log.With("node", name)
	so := session.Options{Route: name, Logger: log}
	if o.sess != nil {
		o.sess(&so)
	}
	sm, err := session.NewManager(so)
	if err != nil {
		return nil, err
	}
	cc := channel.DefaultLocalConfig()
	cc.Name, cc.Cluster, cc.Secret, cc.Logger = name, testCluster, []byte(testSecret), log
	ch, err := channel.New(cc)
	if err != nil {
		return nil, err
	}
	rc := Config{Name: name, Sessions: sm, Channel: ch, Logger: log, DiscoveryWait: 300 * time.Millisecond}
	if o.cfg != nil {
		o.cfg(&rc)
	}
	var rep *Replicator
	if !o.off {
		if rep, err = New(rc); err != nil {
			return nil, err
		}
	}
	if err := ch.Start(context.Background()); err != nil {
		return nil, err
	}
	app := sm.Handler("counter", "/", counterHandler(o.pad))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".css") { // what the replication valve does for static paths
			r = session.Skip(r)
		}
		app.ServeHTTP(w, r)
	}))
	gc := gossip.DefaultLocalConfig()
	gc.Cluster, gc.Secret, gc.Logger = testCluster, testSecret, log
	gc.Local = membership.Member{Name: name, Route: name, Role: membership.RoleNode,
		HTTPAddr: strings.TrimPrefix(srv.URL, "http://"), ChannelAddr: ch.Addr()}
	gc.Seeds = seeds
	mem, err := gossip.New(gc)
	if err != nil {
		srv.Close()
		_ = ch.Shutdown()
		return nil, err
	}
	if err := mem.Start(context.Background()); err != nil {
		srv.Close()
		_ = ch.Shutdown()
		return nil, err
	}
	n := &tnode{name: name, sm: sm, ch: ch, mem: mem, rep: rep, srv: srv}
	if rep != nil {
		if err := rep.Start(mem); err != nil {
			n.stop()
			return nil, err
		}
	}
	return n, nil
}

// stop shuts the member down gracefully (leave first).
func (n *tnode) stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = n.mem.Leave(ctx)
		n.srv.Close()
		if n.rep != nil {
			_ = n.rep.Close(ctx)
		}
		_ = n.ch.Shutdown()
		_ = n.mem.Shutdown()
	})
}

// kill stops the member abruptly: no leave, no draining, connections cut.
func (n *tnode) kill() {
	n.once.Do(func() {
		n.srv.CloseClientConnections()
		n.srv.Close()
		_ = n.ch.Shutdown()
		_ = n.mem.Shutdown()
		if n.rep != nil {
			_ = n.rep.Close(canceled())
		}
	})
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// startCluster starts n members named node1..nodeN and waits until each sees all the others and is
// ready.
func startCluster(t testing.TB, n int, o clusterOpts) []*tnode {
	t.Helper()
	nodes := []*tnode{newNode(t, "node1", o)}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, newNode(t, fmt.Sprintf("node%d", i), o, nodes[0].mem.Addr()))
	}
	if !o.off {
		waitPeers(t, nodes...)
	}
	return nodes
}

// waitPeers waits until every node replicates to every other and is ready.
func waitPeers(t testing.TB, nodes ...*tnode) {
	t.Helper()
	waitFor(t, 10*time.Second, "peers and readiness", func() bool {
		for _, n := range nodes {
			if n.rep.Ready() != nil || len(n.rep.view.Load().peers) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a browser-like HTTP client: a cookie jar and no keep-alive sharing between clients.
type client struct {
	t   testing.TB
	hc  *http.Client
	jar *cookiejar.Jar
}

func newClient(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, jar: jar, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// get requests path on node n and returns status and body.
func (c *client) get(n *tnode, path string) (int, string) {
	c.t.Helper()
	resp, err := c.hc.Get(n.srv.URL + path)
	if err != nil {
		c.t.Fatalf("GET %s on %s: %v", path, n.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sessionID returns the id of the client's session cookie (for any of the nodes: they share the host).
func (c *client) sessionID(n *tnode) string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.srv.URL+"/", nil)
	for _, ck := range c.jar.Cookies(req.URL) {
		if ck.Name == "JSESSIONID" {
			id, _, err := session.ParseCookieValue(ck.Value)
			if err != nil {
				c.t.Fatal(err)
			}
			return id
		}
	}
	c.t.Fatal("no session cookie")
	return ""
}

// value reads attribute n of session id straight from node m's manager ("" when absent).
func value(m *tnode, id string) string {
	s, ok := m.sm.Get(id)
	if !ok {
		return ""
	}
	v, _ := s.Get("n")
	return string(v)
}
