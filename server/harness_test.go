package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/session"
)

func TestMain(m *testing.M) {
	if os.Getenv(proxyAppEnv) != "" {
		proxyTestApp()
		return
	}
	code := m.Run()
	testapps.Cleanup()
	os.Exit(code)
}

const testToken = "test-token-0123456789"

// node is one in-process server on 127.0.0.1:0 with its own dirs.
type node struct {
	t      testing.TB
	srv    *Server
	sm     *session.Manager
	url    string
	deploy string
	work   string
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newNode(t testing.TB, mutate func(*Options)) *node {
	t.Helper()
	root := t.TempDir()
	log := slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sm, err := session.NewManager(session.Options{Route: "node1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Name: "node1", HTTPAddr: "127.0.0.1:0",
		DeployDir: filepath.Join(root, "webapps"), WorkDir: filepath.Join(root, "work"),
		Sessions: sm, ManagerToken: testToken, Logger: log,
		Valves: ValveOptions{AccessLogOut: io.Discard},
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sm.Run(ctx); close(done) }()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cancel()
		<-done
	})
	return &node{t: t, srv: srv, sm: sm, url: "http://" + srv.Addr(), deploy: opts.DeployDir, work: opts.WorkDir}
}

// drop moves a bundle into the deploy dir the way an operator's `mv` would.
func (n *node) drop(src string) string {
	n.t.Helper()
	dst := filepath.Join(n.deploy, filepath.Base(src))
	if err := os.MkdirAll(n.deploy, 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(src, dst); err != nil {
		n.t.Fatal(err)
	}
	return dst
}

// waitApp polls the manager API until the app with key is running (or gone when want is false).
func (n *node) waitApp(key string, want bool) AppInfo {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range n.srv.Apps() {
			if a.Key == key && want && a.State == "running" {
				return a
			}
		}
		if !want && !n.hasApp(key) {
			return AppInfo{}
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("app %s running=%v not reached; apps: %+v", key, want, n.srv.Apps())
	return AppInfo{}
}

func (n *node) hasApp(key string) bool {
	for _, a := range n.srv.Apps() {
		if a.Key == key {
			return true
		}
	}
	return false
}

// client is an HTTP client with its own cookie jar (one browser).
func client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type counterReply struct {
	Node    string `json:"node"`
	Count   int    `json:"count"`
	Session string `json:"session"`
}

func getJSON(t *testing.T, c *http.Client, url string, v any) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return resp
}

// manager calls the manager API with the token.
func (n *node) manager(method, path string, body io.Reader) (*http.Response, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url+"/manager/api"+path, body)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
