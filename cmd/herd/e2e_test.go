package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/testapps"
)

var herdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herd-bin-")
	if err != nil {
		panic(err)
	}
	herdBin = filepath.Join(dir, "herd")
	build := exec.Command("go", "build", "-o", herdBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building herd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	testapps.Cleanup()
	os.Exit(code)
}

const e2eToken = "e2e-token-0123456789abcdef"

// freePort is testapps.FreePort.
func freePort(t testing.TB) int {
	return testapps.FreePort(t)
}

// proc is a herd process started by a test; it is killed when the test ends.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
	err  error
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startHerd(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	return startProc(t, dir, herdBin, args...)
}

// startProc runs name (herd, or a wrapper that execs it) in dir with the e2e token in its environment.
func startProc(t testing.TB, dir, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HERD_TOKEN="+e2eToken)
	p := &proc{cmd: cmd, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("herd %v output:\n%s", args, p.output())
		}
	})
	return p
}

func (p *proc) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("herd did not exit within %v", d)
		return nil
	}
}

// nodeDir makes a node's directory with a config and returns the dir and its HTTP address.
func nodeDir(t testing.TB, name string, cluster string) (dir, httpAddr string) {
	t.Helper()
	dir = t.TempDir()
	httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`node:
  name: %s
  http: %s
  deployDir: ./webapps
  workDir: ./work
  shutdownTimeout: 5s
manager:
  token: ${HERD_TOKEN}
%s`, name, httpAddr, cluster)
	if err := os.WriteFile(filepath.Join(dir, "herd.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, httpAddr
}

func waitHTTP(t testing.TB, url string, ok func(status int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			if ok(resp.StatusCode, string(b)) {
				return string(b)
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: condition not met; last answer: %s", url, last)
	return ""
}

func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// TestNodeAsANewUserRunsIt packs the sample apps with `herd pack`, runs `herd node`, uses the counter
// through a cookie jar, then stops the node with SIGTERM and checks the app process went with it.
func TestNodeAsANewUserRunsIt(t *testing.T) {
	dir, addr := nodeDir(t, "node1", "")
	for _, app := range []string{"counter", "hello"} {
		out, err := exec.Command(herdBin, "pack", filepath.Join(testapps.RepoRoot(), "webapps", app),
			"-o", filepath.Join(dir, "webapps", app+".zip")).CombinedOutput()
		if err != nil {
			t.Fatalf("herd pack %s: %v\n%s", app, err, out)
		}
	}
	node := startHerd(t, dir, "node", "--config", "herd.yaml")
	base := "http://" + addr
	waitHTTP(t, base+"/readyz", func(s int, b string) bool {
		return s == 200
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var r struct {
		Node    string
		Count   int
		Session string
	}
	for i := 1; i <= 2; i++ {
		resp, err := c.Get(base + "/counter/inc")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || r.Count != i || r.Node != "node1" {
			t.Fatalf("inc %d: %+v %v", i, r, err)
		}
	}
	waitHTTP(t, base+"/hello/", func(s int, b string) bool { return s == 200 && strings.Contains(b, "<html") })

	out, err := exec.Command(herdBin, "status", "--node", addr, "--token", e2eToken).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node1 (this node)") || !strings.Contains(string(out), "counter##1") {
		t.Fatalf("herd status: %v\n%s", err, out)
	}

	appPID := counterPID(t, base)
	if err := node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := node.wait(t, 30*time.Second); err != nil {
		t.Fatalf("herd node exit after SIGTERM: %v", err)
	}
	if pidAlive(appPID) {
		t.Fatalf("app process %d still running after the node stopped", appPID)
	}
}

// counterPID reads the counter app's process id from the manager API.
func counterPID(t testing.TB, base string) int {
	t.Helper()
	pid, _ := counterRuntime(t, base)
	return pid
}

// counterPort reads the port the counter app listens on from the manager API.
func counterPort(t testing.TB, base string) int {
	t.Helper()
	_, port := counterRuntime(t, base)
	return port
}

func counterRuntime(t testing.TB, base string) (pid, port int) {
	t.Helper()
	body := waitHTTP(t, base+"/manager/api/apps", func(s int, b string) bool { return s == 200 && strings.Contains(b, `"pid"`) })
	var apps []struct {
		Key     string
		Runtime struct{ PID, Port int }
	}
	if err := json.Unmarshal([]byte(body), &apps); err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if a.Key == "counter##1" && a.Runtime.PID > 0 {
			return a.Runtime.PID, a.Runtime.Port
		}
	}
	t.Fatalf("no counter pid in %s", body)
	return 0, 0
}

// TestNoOrphanAppAfterNodeSIGKILL: the supervised app dies with the node even on SIGKILL.
func TestNoOrphanAppAfterNodeSIGKILL(t *testing.T) {
	dir, addr := nodeDir(t, "node1", "")
	if err := os.MkdirAll(filepath.Join(dir, "webapps"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(testapps.Bundle(t, "counter", "counter.zip"), filepath.Join(dir, "webapps", "counter.zip")); err != nil {
		t.Fatal(err)
	}
	node := startHerd(t, dir, "node", "--config", "herd.yaml")
	pid := counterPID(t, "http://"+addr)
	if err := node.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = node.wait(t, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("app %d outlived its SIGKILLed node", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterSeesKilledMemberDead runs three real `herd node` processes joined by gossip on loopback,
// kills one with SIGKILL and waits until the two others list it no more as alive.
func TestClusterSeesKilledMemberDead(t *testing.T) {
	t.Run("gossip", func(t *testing.T) {
		ports := []int{freePort(t), freePort(t), freePort(t)}
		seeds := fmt.Sprintf("[127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d]", ports[0], ports[1], ports[2])
		clusterKill9(t, func(i int) string {
			return fmt.Sprintf("    kind: gossip\n    profile: local\n    bind: 127.0.0.1:%d\n    seeds: %s\n", ports[i], seeds)
		})
	})
	t.Run("multicast", func(t *testing.T) {
		lo, err := net.InterfaceByName("lo")
		if err != nil || lo.Flags&net.FlagMulticast == 0 {
			t.Skip("lo has no MULTICAST flag here (CI runs the suite in a namespace where it has)")
		}
		group := fmt.Sprintf("239.77.1.%d:%d", 1+os.Getpid()%250, freePort(t))
		clusterKill9(t, func(int) string {
			return "    kind: multicast\n    profile: local\n    interface: lo\n    address: " + group + "\n"
		})
	})
}

// clusterKill9 runs three real `herd node` processes with the membership lines of member(i), kills one
// with SIGKILL and waits until the two others no longer list it as alive.
func clusterKill9(t *testing.T, member func(i int) string) {
	var addrs []string
	var procs []*proc
	for i := range 3 {
		cl := fmt.Sprintf(`cluster:
  name: e2e
  secret: e2e-cluster-secret-0123456789
  membership:
%s  replication:
    bind: 127.0.0.1:%d
`, member(i), freePort(t))
		dir, addr := nodeDir(t, fmt.Sprintf("node%d", i+1), cl)
		addrs = append(addrs, addr)
		procs = append(procs, startHerd(t, dir, "node", "--config", "herd.yaml"))
	}
	for _, a := range addrs {
		waitHTTP(t, "http://"+a+"/manager/api/members", func(s int, b string) bool {
			return s == 200 && strings.Count(b, `"state": "alive"`) == 3
		})
	}
	if err := procs[2].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, a := range addrs[:2] {
		waitHTTP(t, "http://"+a+"/manager/api/members", func(s int, b string) bool {
			return s == 200 && strings.Count(b, `"state": "alive"`) == 2
		})
	}
	t.Logf("SIGKILLed node3 no longer alive for both peers after %v", time.Since(killed))
	out, err := exec.Command(herdBin, "status", "--node", addrs[0], "--token", e2eToken, "--json").CombinedOutput()
	if err != nil || !json.Valid(out) || !strings.Contains(string(out), `"node2"`) {
		t.Fatalf("herd status --json: %v\n%s", err, out)
	}
}

// TestExamplesLoad keeps the shipped example configs valid.
func TestExamplesLoad(t *testing.T) {
	t.Setenv("HERD_SECRET", "example-secret-0123456789")
	t.Setenv("HERD_TOKEN", "example-token")
	files, _ := filepath.Glob(filepath.Join(testapps.RepoRoot(), "examples", "*"))
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		if _, err := loadConfig(f); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// TestDeployUndeploySessionsCLI drives a running node with `herd deploy`, `herd sessions` and
// `herd undeploy`.
func TestDeployUndeploySessionsCLI(t *testing.T) {
	dir, addr := nodeDir(t, "node1", "")
	startHerd(t, dir, "node", "--config", "herd.yaml")
	base := "http://" + addr
	waitHTTP(t, base+"/readyz", func(s int, _ string) bool { return s == 200 })
	herd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(herdBin, append(args, "--node", addr)...)
		cmd.Env = append(os.Environ(), "HERD_TOKEN="+e2eToken)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("herd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := herd("deploy", testapps.Bundle(t, "counter", "counter.zip")); !strings.Contains(out, "deployed counter##1 at /counter") {
		t.Fatalf("deploy output: %s", out)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + "/counter/inc")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("deployed app: %v %v", resp, err)
	}
	resp.Body.Close()
	var list []struct{ ID, App string }
	if err := json.Unmarshal([]byte(herd("sessions", "--json")), &list); err != nil || len(list) != 1 || list[0].App != "counter##1" {
		t.Fatalf("sessions: %v %+v", err, list)
	}
	herd("undeploy", "counter##1")
	if resp, _ := http.Get(base + "/counter/get"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("undeployed app answers %d", resp.StatusCode)
	}
	cmd := exec.Command(herdBin, "deploy", "/nonexistent.zip", "--node", addr, "--token", e2eToken)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "nonexistent.zip") {
		t.Fatalf("deploying a missing file: %v %s", err, out)
	}
}

// TestUpAsANewUser runs `herd up` as the README says, uses the counter through the router with a
// sticky session, then stops it with Ctrl-C (SIGINT) and checks nothing is left running.
func TestUpAsANewUser(t *testing.T) {
	work := t.TempDir()
	routerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	first := freePort(t)
	for p := first + 1; p < first+3; p++ { // the nodes take consecutive ports
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			t.Skipf("port %d busy: %v", p, err)
		} else {
			ln.Close()
		}
	}
	up := startHerd(t, work, "up", "--router", routerAddr, "--http-port", fmt.Sprint(first))
	waitHTTP(t, "http://"+routerAddr+"/counter/get", func(s int, _ string) bool {
		return s == 200 && strings.Contains(up.output(), "Ctrl-C stops everything")
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var node string
	for i := 1; i <= 5; i++ {
		var r struct {
			Node  string
			Count int
		}
		resp, err := c.Get("http://" + routerAddr + "/counter/inc")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || r.Count != i {
			t.Fatalf("request %d through the router: %+v %v", i, r, err)
		}
		if node != "" && r.Node != node {
			t.Fatalf("session moved from %s to %s", node, r.Node)
		}
		node = r.Node
	}
	// The sample apps came through node1's farm watch dir: every node serves them. Removing the
	// bundle from there undeploys it everywhere; putting it back deploys it everywhere again.
	nodes := []string{fmt.Sprint(first), fmt.Sprint(first + 1), fmt.Sprint(first + 2)}
	serving := func(want int) {
		for _, port := range nodes {
			waitHTTP(t, "http://127.0.0.1:"+port+"/hello/", func(s int, _ string) bool { return s == want })
		}
	}
	serving(200)
	farmed := filepath.Join(work, "herd-up", "farm", "hello.zip")
	data, err := os.ReadFile(farmed)
	if err != nil {
		t.Fatalf("the farm dir holds no hello.zip: %v", err)
	}
	if err := os.Remove(farmed); err != nil {
		t.Fatal(err)
	}
	serving(404)
	if err := os.WriteFile(farmed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	serving(200)
	// herd deploy to node1 farms the upload: every node runs counter##2; herd undeploy removes it everywhere.
	v2 := testapps.Bundle(t, "counter", "counter##2.zip")
	token := regexp.MustCompile(`manager token\s+(\S+)`).FindStringSubmatch(up.output())
	if token == nil {
		t.Fatalf("no manager token in the output of herd up:\n%s", up.output())
	}
	herdCLI := func(args ...string) string {
		cmd := exec.Command(herdBin, append(args, "--node", "127.0.0.1:"+nodes[0], "--token", token[1])...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("herd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := herdCLI("deploy", v2); !strings.Contains(out, "deployed counter##2") {
		t.Fatalf("herd deploy: %s", out)
	}
	apps := func(want bool) {
		for _, port := range nodes {
			req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/manager/api/apps", nil)
			req.Header.Set("Authorization", "Bearer "+token[1])
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.DefaultClient.Do(req)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if strings.Contains(string(body), `"counter##2"`) == want && strings.Contains(string(body), `"running"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node on port %s: counter##2 deployed=%v expected; apps: %s", port, want, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	apps(true)
	// Any node answers for the whole cluster: every node's apps and stats in one call.
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+nodes[1]+"/manager/api/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+token[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cv struct {
		Nodes []struct {
			Name, Error string
			Apps        []struct{ Key string }
			Stats       map[string]any
		}
		SessionsHeld int
	}
	err = json.NewDecoder(resp.Body).Decode(&cv)
	resp.Body.Close()
	if err != nil || len(cv.Nodes) != 3 || cv.SessionsHeld < 3 {
		t.Fatalf("cluster view: %+v %v", cv, err)
	}
	for _, n := range cv.Nodes {
		if n.Error != "" || len(n.Apps) < 3 || n.Stats["replication"] == nil || n.Stats["farm"] == nil {
			t.Fatalf("cluster view of %s: %+v", n.Name, n)
		}
	}
	herdCLI("undeploy", "counter##2")
	apps(false)
	if err := up.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := up.wait(t, 60*time.Second); err != nil {
		t.Fatalf("herd up exit: %v\n%s", err, up.output())
	}
	out, _ := exec.Command("pgrep", "-f", filepath.Join(work, "herd-up")).Output()
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("processes left after herd up stopped: %s", out)
	}
	for _, p := range []string{routerAddr, fmt.Sprintf("127.0.0.1:%d", first)} {
		if conn, err := net.Dial("tcp", p); err == nil {
			conn.Close()
			t.Fatalf("%s still accepts connections", p)
		}
	}
}
