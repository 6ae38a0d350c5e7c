package farming

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/gossip"
	"github.com/herdproject/herd/server"
	"github.com/herdproject/herd/session"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testapps.Cleanup()
	os.Exit(code)
}

// serverDeployer adapts *server.Server to Deployer (package cluster does the same).
type serverDeployer struct{ s *server.Server }

func (d serverDeployer) DeployBundle(ctx context.Context, path string) error {
	_, err := d.s.DeployFile(ctx, path)
	return err
}

func (d serverDeployer) UndeployBundle(ctx context.Context, key string) error {
	return d.s.Undeploy(ctx, key)
}

func (d serverDeployer) DeployedApps() []App {
	var out []App
	for _, a := range d.s.Apps() {
		out = append(out, App{Key: a.Key, Name: a.Name, Version: a.Version, Context: a.Context, SHA256: a.SHA256,
			State: a.State, Sessions: a.Sessions})
	}
	return out
}

var testSecret = []byte("farming-test-secret-0123456789abcdef")

// tlog sends log lines to t.Log until the test ends (memberlist may log after Shutdown).
type tlog struct {
	t    testing.TB
	done *atomic.Bool
	pfx  string
}

func (w tlog) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(w.pfx + strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// tcluster is an in-process cluster on 127.0.0.1: gossip membership, channel, server and farm per
// member, with real files.
type tcluster struct {
	t       testing.TB
	name    string
	done    *atomic.Bool
	quiet   bool
	mutate  func(name string, c *Config)
	nodes   []*tnode
	seedsMu sync.Mutex
	seeds   []string
}

// tnode is one member; its directories survive a stop, so a restart finds its state again.
type tnode struct {
	c                 *tcluster
	name              string
	watch, temp, work string

	ctx     context.Context
	cancel  context.CancelFunc
	smDone  chan struct{}
	srv     *server.Server
	ch      *channel.Channel
	mem     *gossip.Provider
	farm    *Manager
	url     string
	running bool
}

var clusterSeq atomic.Int64

func newCluster(t testing.TB, n int, mutate func(name string, c *Config)) *tcluster {
	t.Helper()
	done := new(atomic.Bool)
	t.Cleanup(func() { done.Store(true) })
	c := &tcluster{t: t, name: fmt.Sprintf("farm-%d-%d", time.Now().UnixNano()%1e9, clusterSeq.Add(1)), done: done, mutate: mutate}
	if _, ok := t.(*testing.B); ok {
		c.quiet = true
	}
	for i := 1; i <= n; i++ {
		root := t.TempDir()
		nd := &tnode{c: c, name: fmt.Sprintf("node%d", i), watch: filepath.Join(root, "watch"),
			temp: filepath.Join(root, "farm"), work: filepath.Join(root, "work")}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.start() // the first member is everyone's seed
	}
	c.waitMembers(n)
	return c
}

func (c *tcluster) logger(name string) *slog.Logger {
	if c.quiet {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tlog{t: c.t, done: c.done, pfx: name + " "}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start brings the member up: session manager, server, channel, gossip, farm.
func (nd *tnode) start() {
	t := nd.c.t
	t.Helper()
	log := nd.c.logger(nd.name)
	nd.ctx, nd.cancel = context.WithCancel(context.Background())
	sm, err := session.NewManager(session.Options{Route: nd.name, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	nd.smDone = make(chan struct{})
	go func() { sm.Run(nd.ctx); close(nd.smDone) }()
	nd.srv, err = server.New(server.Options{Name: nd.name, HTTPAddr: "127.0.0.1:0", WorkDir: nd.work, Sessions: sm,
		Logger: log, Valves: server.ValveOptions{AccessLogOut: io.Discard}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.srv.Start(nd.ctx); err != nil {
		t.Fatal(err)
	}
	nd.url = "http://" + nd.srv.Addr()

	cc := channel.DefaultLocalConfig()
	cc.Name, cc.Cluster, cc.Secret, cc.Logger = nd.name, nd.c.name, testSecret, log
	nd.ch, err = channel.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.ch.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	gc := gossip.DefaultLocalConfig()
	gc.Cluster, gc.Secret, gc.Logger = nd.c.name, string(testSecret), log
	gc.Local = membership.Member{Name: nd.name, HTTPAddr: nd.srv.Addr(), ChannelAddr: nd.ch.Addr()}
	nd.c.seedsMu.Lock()
	gc.Seeds = append([]string(nil), nd.c.seeds...)
	nd.c.seedsMu.Unlock()
	nd.mem, err = gossip.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.mem.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	nd.c.seedsMu.Lock()
	nd.c.seeds = append(nd.c.seeds, nd.mem.Addr())
	nd.c.seedsMu.Unlock()

	fc := Config{Name: nd.name, WatchDir: nd.watch, TempDir: nd.temp, Settle: 100 * time.Millisecond,
		SyncInterval: time.Second, SyncGrace: 300 * time.Millisecond, StallTimeout: 3 * time.Second,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Logger: log}
	if nd.c.mutate != nil {
		nd.c.mutate(nd.name, &fc)
	}
	nd.farm, err = New(fc, nd.ch, nd.mem, serverDeployer{nd.srv})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.farm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	nd.running = true
	t.Cleanup(nd.stop)
}

// stop takes the member down cleanly (a leave, then everything shut); its files stay.
func (nd *tnode) stop() {
	if !nd.running {
		return
	}
	nd.running = false
	if err := nd.farm.Close(); err != nil {
		nd.c.t.Errorf("%s: farm close: %v", nd.name, err)
	}
	lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = nd.mem.Leave(lctx)
	cancel()
	_ = nd.mem.Shutdown()
	_ = nd.ch.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nd.srv.Shutdown(sctx); err != nil {
		nd.c.t.Errorf("%s: server shutdown: %v", nd.name, err)
	}
	nd.cancel()
	<-nd.smDone
}

// waitMembers waits until every running member sees n live node members.
func (c *tcluster) waitMembers(n int) {
	c.t.Helper()
	waitFor(c.t, 15*time.Second, fmt.Sprintf("%d members", n), func() bool {
		for _, nd := range c.nodes {
			if nd.running && len(nd.farm.peers()) != n-1 {
				return false
			}
		}
		return true
	})
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get answers the status and body of GET url+path ("" body and 0 on a transport error).
func (nd *tnode) get(path string) (int, string) {
	resp, err := httpClient.Get(nd.url + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serves reports whether the member answers 200 with want in the body at path.
func (nd *tnode) serves(path, want string) bool {
	code, body := nd.get(path)
	return code == http.StatusOK && strings.Contains(body, want)
}

// waitServing waits until every listed member serves want at path.
func waitServing(t testing.TB, timeout time.Duration, path, want string, nodes ...*tnode) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%s serving %q", path, want), func() bool {
		for _, nd := range nodes {
			if !nd.serves(path, want) {
				return false
			}
		}
		return true
	})
}

// waitGone waits until no listed member serves path (404).
func waitGone(t testing.TB, timeout time.Duration, path string, nodes ...*tnode) {
	t.Helper()
	waitFor(t, timeout, path+" gone", func() bool {
		for _, nd := range nodes {
			if code, _ := nd.get(path); code != http.StatusNotFound {
				return false
			}
		}
		return true
	})
}

// drop moves a bundle into the member's watch directory the careful way: copy to a hidden temp
// name beside it, then rename into place.
func (nd *tnode) drop(src string) string {
	nd.c.t.Helper()
	return dropInto(nd.c.t, nd.watch, src, filepath.Base(src))
}

func dropInto(t testing.TB, dir, src, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// makeBundle packs a static app named name at /name into dir/fileName; its index page holds
// marker, and blob bytes of random (incompressible) data go into public/blob.bin.
func makeBundle(t testing.TB, dir, fileName, marker string, blob int) string {
	t.Helper()
	fn, err := bundle.ParseFileName(fileName)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf("name: %s\ncontext: /%s\nkind: static\nstatic: public/\n", fn.Name, fn.Name)
	if fn.Version != "" {
		manifest += fmt.Sprintf("version: %q\n", fn.Version)
	}
	must(t, os.WriteFile(filepath.Join(src, "manifest.yaml"), []byte(manifest), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "public", "index.html"), []byte("<p>"+marker+"</p>\n"), 0o644))
	if blob > 0 {
		b := make([]byte, blob)
		_, _ = rand.Read(b)
		must(t, os.WriteFile(filepath.Join(src, "public", "blob.bin"), b, 0o644))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, fileName)
	if _, err := bundle.Pack(src, out, bundle.PackOptions{}); err != nil {
		t.Fatalf("pack %s: %v", fileName, err)
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ledgerEntry returns node's ledger entry for key.
func (nd *tnode) ledgerEntry(key string) (Entry, bool) {
	for _, e := range nd.farm.Ledger() {
		if e.Key == key {
			return e, true
		}
	}
	return Entry{}, false
}

func copyTo(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.MkdirAll(filepath.Dir(to), 0o755))
	must(t, os.WriteFile(to, b, 0o644))
}

func renameFile(from, to string) error { return os.Rename(from, to) }
