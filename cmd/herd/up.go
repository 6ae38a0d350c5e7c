package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/webapps/hello"
)

// upOptions are the flags of `herd up`.
type upOptions struct {
	dir        string
	nodes      int
	routerHTTP string
	firstHTTP  int
}

// runUp starts a whole local cluster: N nodes and the router on loopback, a generated cluster secret
// and manager token, gossip membership on 127.0.0.1, and the sample apps deployed. It prints the URLs
// and stops everything on Ctrl-C. Every file it writes is under --dir.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var o upOptions
	fs.StringVar(&o.dir, "dir", "herd-up", "directory for configs, logs, deployed apps (created; kept after exit)")
	fs.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&o.routerHTTP, "router", "127.0.0.1:8080", "router listen address")
	fs.IntVar(&o.firstHTTP, "http-port", 8081, "HTTP port of node1 (node i gets port+i-1)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if o.nodes < 1 || o.nodes > 16 {
		return usageError{"--nodes must be between 1 and 16"}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	plan, err := planUp(o, dir)
	if err != nil {
		return err
	}
	if err := plan.write(self); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	group := &childGroup{}
	defer group.stop(stderr)
	env := append(os.Environ(), "HERD_SECRET="+plan.secret, "HERD_TOKEN="+plan.token)
	for i := range plan.nodes {
		n := plan.nodes[i]
		if err := group.start(self, env, filepath.Join(n.dir, "herd.log"), "node", "--config", filepath.Join(n.dir, "herd.yaml")); err != nil {
			return err
		}
	}
	if err := group.start(self, env, filepath.Join(dir, "router", "herd.log"), "router", "--config", filepath.Join(dir, "router", "herd.yaml")); err != nil {
		return err
	}
	if err := plan.waitServing(ctx, group); err != nil {
		return err
	}
	plan.print(stdout)
	// Once up, a member that dies (say, killed to watch a failover) is reported and the rest goes on.
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "\nstopping the cluster ...")
			return nil
		case err := <-group.exited:
			fmt.Fprintf(stdout, "%v; the rest of the cluster keeps running (logs under %s)\n", err, dir)
		}
	}
}

// upPlan is the layout of a local cluster.
type upPlan struct {
	dir, secret, token string
	routerHTTP         string
	routerGossip       int
	nodes              []upNode
}

type upNode struct {
	name, dir, http string
	gossip, channel int
}

func planUp(o upOptions, dir string) (*upPlan, error) {
	p := &upPlan{dir: dir, secret: randomHex(24), token: randomHex(16), routerHTTP: o.routerHTTP}
	if err := checkFree(o.routerHTTP); err != nil {
		return nil, err
	}
	for i := 1; i <= o.nodes; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", o.firstHTTP+i-1)
		if err := checkFree(addr); err != nil {
			return nil, err
		}
		g, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		c, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("node%d", i)
		p.nodes = append(p.nodes, upNode{name: name, dir: filepath.Join(dir, name), http: addr, gossip: g, channel: c})
	}
	var err error
	p.routerGossip, err = freeLoopbackPort()
	return p, err
}

func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is not free (another herd up running?): %w", addr, err)
	}
	return ln.Close()
}

func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// farmDir is node1's farm watch dir: a bundle dropped there runs on every node.
func (p *upPlan) farmDir() string { return filepath.Join(p.dir, "farm") }

// write creates the directories, configs and sample bundles.
func (p *upPlan) write(self string) error {
	var seeds []string
	for _, n := range p.nodes {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", n.gossip))
	}
	membership := func(bind int) string {
		return fmt.Sprintf("  membership:\n    kind: gossip\n    profile: local\n    bind: 127.0.0.1:%d\n    seeds: [%s]\n",
			bind, strings.Join(seeds, ", "))
	}
	bundles := filepath.Join(p.dir, "bundles")
	if err := os.MkdirAll(bundles, 0o755); err != nil {
		return err
	}
	apps, err := sampleBundles(self, bundles)
	if err != nil {
		return err
	}
	for i, n := range p.nodes {
		farm := ""
		if i == 0 { // node1 watches the farm dir; farming deploys what lands there on every member
			farm = fmt.Sprintf("  farm:\n    watchDir: %s\n", p.farmDir())
		}
		cfg := fmt.Sprintf("# written by herd up\nnode:\n  name: %s\n  http: %s\n  deployDir: %s\n  workDir: %s\n"+
			"cluster:\n  name: herd-up\n  secret: ${HERD_SECRET}\n%s  replication:\n    bind: 127.0.0.1:%d\n%s"+
			"manager:\n  token: ${HERD_TOKEN}\n",
			n.name, n.http, filepath.Join(n.dir, "webapps"), filepath.Join(n.dir, "work"), membership(n.gossip), n.channel, farm)
		if err := writeUpFile(filepath.Join(n.dir, "herd.yaml"), cfg); err != nil {
			return err
		}
	}
	for _, b := range apps {
		if err := copyInto(b, p.farmDir()); err != nil {
			return err
		}
	}
	cfg := fmt.Sprintf("# written by herd up\nnode:\n  name: router\n  http: 127.0.0.1:0\n  workDir: %s\n"+
		"cluster:\n  name: herd-up\n  secret: ${HERD_SECRET}\n%s"+"manager:\n  token: ${HERD_TOKEN}\nrouter:\n  http: %s\n",
		filepath.Join(p.dir, "router", "work"), membership(p.routerGossip), p.routerHTTP)
	return writeUpFile(filepath.Join(p.dir, "router", "herd.yaml"), cfg)
}

func writeUpFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o600)
}

// sampleBundles packs the sample apps from what the herd binary carries: the static hello site, and
// a counter bundle whose executable runs this herd binary's built-in copy of the counter app.
func sampleBundles(self, out string) ([]string, error) {
	src := filepath.Join(out, "src")
	defer os.RemoveAll(src)
	helloDir := filepath.Join(src, "hello")
	if err := os.CopyFS(helloDir, hello.Files); err != nil {
		return nil, err
	}
	counterDir := filepath.Join(src, "counter")
	manifest := "name: counter\nversion: \"1\"\ncontext: /counter\nkind: process\ncommand: [bin/counter]\nhealth: /counter/healthz\n"
	script := "#!/bin/sh\n# runs the counter sample built into herd\nexec '" + strings.ReplaceAll(self, "'", `'\''`) + "' _counter \"$@\"\n"
	if err := writeUpFile(filepath.Join(counterDir, "manifest.yaml"), manifest); err != nil {
		return nil, err
	}
	if err := writeUpFile(filepath.Join(counterDir, "bin", "counter"), script); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(counterDir, "bin", "counter"), 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, app := range []string{"hello", "counter"} {
		p := filepath.Join(out, app+".zip")
		if _, err := bundle.Pack(filepath.Join(src, app), p, bundle.PackOptions{}); err != nil {
			return nil, fmt.Errorf("pack %s: %w", app, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func copyInto(file, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(file)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, filepath.Base(file)))
}

// waitServing polls until the router answers the counter through every layer, or a child dies.
func (p *upPlan) waitServing(ctx context.Context, group *childGroup) error {
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get("http://" + p.routerHTTP + "/counter/get")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-group.exited:
			return fmt.Errorf("a herd process exited during start-up: %v (see the logs under %s)", err, p.dir)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not serve /counter within 90s (see the logs under %s)", p.dir)
		}
	}
}

func (p *upPlan) print(w io.Writer) {
	fmt.Fprintf(w, "herd cluster up: %d nodes and a router on loopback\n\n", len(p.nodes))
	fmt.Fprintf(w, "  router      http://%s/counter/inc   http://%s/hello/\n", p.routerHTTP, p.routerHTTP)
	for _, n := range p.nodes {
		fmt.Fprintf(w, "  %-10s  http://%s/   (log %s)\n", n.name, n.http, filepath.Join(n.dir, "herd.log"))
	}
	fmt.Fprintf(w, "\n  manager token  %s\n  status         HERD_TOKEN=%s herd status --node %s\n", p.token, p.token, p.nodes[0].http)
	fmt.Fprintf(w, "  dashboard      http://%s/manager/?token=%s\n", p.nodes[0].http, p.token)
	fmt.Fprintf(w, "  deploy         drop a bundle into %s: it runs on every node (remove it to undeploy everywhere)\n", p.farmDir())
	fmt.Fprintf(w, "\nCtrl-C stops everything.\n")
}

// childGroup owns the herd processes `herd up` started.
type childGroup struct {
	mu     sync.Mutex
	cmds   []*exec.Cmd
	waits  []chan struct{}
	exited chan error
}

func (g *childGroup) start(self string, env []string, logPath string, args ...string) error {
	if g.exited == nil {
		g.exited = make(chan error, 64)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	g.mu.Lock()
	g.cmds, g.waits = append(g.cmds, cmd), append(g.waits, done)
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(done)
		if err == nil {
			err = errors.New("exited")
		}
		g.exited <- fmt.Errorf("herd %s: %w", strings.Join(args, " "), err)
	}()
	return nil
}

// stop sends SIGTERM to every child, waits up to 20s, then kills what is left.
func (g *childGroup) stop(w io.Writer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(20 * time.Second)
	for i, done := range g.waits {
		select {
		case <-done:
		case <-deadline:
			fmt.Fprintf(w, "killing herd %v\n", g.cmds[i].Args[1:])
			_ = g.cmds[i].Process.Kill()
			<-done
		}
	}
}
