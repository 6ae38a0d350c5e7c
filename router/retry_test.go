package router

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/server"
	"github.com/herdproject/herd/session"
)

// staticNode starts a real node (counter at /counter, plus mounts) for use as a static backend.
func staticNode(t testing.TB, name string, mounts ...any) *server.Server {
	t.Helper()
	sm, err := session.NewManager(session.Options{Route: name})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Name: name, HTTPAddr: "127.0.0.1:0", WorkDir: t.TempDir(), Sessions: sm,
		Logger: slog.New(slog.DiscardHandler), Valves: server.ValveOptions{AccessLogOut: io.Discard}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Mount("counter", "/counter", counterApp(name)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(mounts); i += 2 {
		ctxPath := mounts[i].(string)
		if err := srv.Mount(strings.Trim(ctxPath, "/"), ctxPath, mounts[i+1].(http.Handler)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

// resetNode accepts connections and answers the health path, but resets the connection on every
// other request after reading its headers: the request reached a node that then died.
type resetNode struct {
	ln   net.Listener
	hits atomic.Int64
}

func newResetNode(t *testing.T) *resetNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &resetNode{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go n.serve(c)
		}
	}()
	return n
}

func (n *resetNode) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/healthz" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			continue
		}
		n.hits.Add(1)
		_, _ = io.Copy(io.Discard, req.Body) // the body was consumed
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	}
}

func do(t *testing.T, c *http.Client, method, url, body string) (int, string, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Node"), string(b)
}

func TestRetryRules(t *testing.T) {
	good := staticNode(t, "good")
	bad := newResetNode(t)
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{bad.ln.Addr().String(), good.Addr()}
	})
	// Fresh clients: a session cookie would make them sticky to the good node.
	// Idempotent requests are retried on the good node: never an error.
	for i := 0; i < 6; i++ {
		if status, node, body := do(t, newClient(t), http.MethodGet, r.url+"/counter/get", ""); status != 200 || node != "good" {
			t.Fatalf("GET %d: %d from %q: %s", i, status, node, body)
		}
	}
	if bad.hits.Load() == 0 {
		t.Fatal("the resetting node never got a request: the retry path was not exercised")
	}
	// The failing node is marked: it gets nothing more until the mark expires.
	before := bad.hits.Load()
	for i := 0; i < 6; i++ {
		if status, _, body := do(t, newClient(t), http.MethodPost, r.url+"/counter/inc", "payload"); status != 200 {
			t.Fatalf("POST while the bad node is marked: %d %s", status, body)
		}
	}
	if bad.hits.Load() != before {
		t.Fatal("a marked node got requests before its mark expired")
	}
	// After RetryAfterFailure (30s by the injected clock) it is tried again; a POST whose body it
	// consumed is not replayed: 502 with the request id.
	r.clock.Advance(31 * time.Second)
	got502 := false
	for i := 0; i < 4 && !got502; i++ {
		status, _, body := do(t, newClient(t), http.MethodPost, r.url+"/counter/inc", "payload")
		switch status {
		case http.StatusBadGateway:
			if !strings.Contains(body, "request id") || !strings.Contains(body, "attempt") {
				t.Fatalf("502 body %q lacks the request id or attempts", body)
			}
			got502 = true
		case http.StatusOK:
		default:
			t.Fatalf("POST: %d %s", status, body)
		}
	}
	if !got502 {
		t.Fatal("a POST the node consumed was retried instead of answered 502")
	}
}

func TestDialErrorRetriedForAnyMethod(t *testing.T) {
	good := staticNode(t, "good")
	doomed := staticNode(t, "doomed")
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{doomed.Addr(), good.Addr()}
	})
	waitChecked(t, r, doomed.Addr())
	_ = doomed.Shutdown(context.Background()) // its port now refuses connections
	for i := 0; i < 6; i++ {
		if status, node, body := do(t, newClient(t), http.MethodPost, r.url+"/counter/inc", "data"); status != 200 || node != "good" {
			t.Fatalf("POST %d: %d from %q: %s", i, status, node, body)
		}
	}
	if b := r.Table().lookup(doomed.Addr()); b == nil || !b.state.failed(r.clock.Now()) {
		t.Fatal("the refusing node carries no failure mark")
	}
}

func TestAllNodesDownAnswers502WithRequestID(t *testing.T) {
	doomed := staticNode(t, "doomed")
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{doomed.Addr()} })
	waitChecked(t, r, doomed.Addr())
	_ = doomed.Shutdown(context.Background())
	req, _ := http.NewRequest(http.MethodGet, r.url+"/counter/get", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Request-Id") != "abc-123" ||
		!strings.Contains(string(body), "request id: abc-123") || !strings.Contains(string(body), "could not connect") {
		t.Fatalf("got %d %q (id %q)", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
	if strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("error body reveals node addresses: %q", body)
	}
}

func TestStaticBackendsLearnRoutesAndStick(t *testing.T) {
	a, b := staticNode(t, "alpha"), staticNode(t, "beta")
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{a.Addr(), b.Addr()} })
	seen := map[string]bool{}
	for u := 0; u < 4; u++ {
		client := newClient(t)
		_, first, _ := get(t, client, r.url+"/counter/inc")
		seen[first] = true
		for i := 0; i < 4; i++ {
			if _, node, _ := get(t, client, r.url+"/counter/inc"); node != first {
				t.Fatalf("user %d moved from %s to %s", u, first, node)
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("sessions only on %v", seen)
	}
	if r.Table().byRoute["alpha"] == nil || r.Table().byRoute["beta"] == nil {
		t.Fatal("routes of static nodes not learnt")
	}
}

func TestActiveHealthCheckExcludesAndRestores(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	a := staticNode(t, "alpha")
	flaky := http.NewServeMux()
	flaky.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "sick", http.StatusServiceUnavailable)
		}
	})
	flaky.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Node", "flaky") })
	ln := listen(t)
	hs := &http.Server{Handler: flaky}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{a.Addr(), ln.Addr().String()}
		o.Settings.HealthInterval = 50 * time.Millisecond
	})
	count := func() int {
		n := 0
		for i := 0; i < 6; i++ {
			if _, node, _ := get(t, newClient(t), r.url+"/counter/get"); node == "flaky" {
				n++
			}
		}
		return n
	}
	if count() == 0 {
		t.Fatal("healthy flaky node got no requests")
	}
	healthy.Store(false)
	waitFor(t, 5*time.Second, "flaky node excluded", func() error {
		if b := r.Table().lookup(ln.Addr().String()); !b.state.unhealthy.Load() {
			return io.EOF
		}
		return nil
	})
	if n := count(); n != 0 {
		t.Fatalf("unhealthy node got %d requests", n)
	}
	healthy.Store(true)
	waitFor(t, 5*time.Second, "flaky node restored", func() error {
		if count() == 0 {
			return io.EOF
		}
		return nil
	})
}

// waitChecked waits until the router's first health check of the node at addr is done.
func waitChecked(t testing.TB, r *testRouter, addr string) {
	t.Helper()
	waitFor(t, 5*time.Second, "the first health check of "+addr, func() error {
		if b := r.Table().lookup(addr); b == nil || b.state.checks.Load() == 0 {
			return io.EOF
		}
		return nil
	})
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// closingNode answers each request, then closes the connection without saying so (no Connection:
// close): the router's pooled connection is stale the next time it is used.
type closingNode struct {
	ln     net.Listener
	closed chan struct{}
	conns  atomic.Int64
}

func newClosingNode(t *testing.T) *closingNode {
	n := &closingNode{ln: listen(t), closed: make(chan struct{}, 100)}
	t.Cleanup(func() { _ = n.ln.Close() })
	go func() {
		for {
			c, err := n.ln.Accept()
			if err != nil {
				return
			}
			n.conns.Add(1)
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Node: closer\r\n\r\nok")
				}
				c.Close()
				if err == nil && req.URL.Path != "/healthz" {
					n.closed <- struct{}{}
				}
			}()
		}
	}()
	return n
}

func TestStalePooledConnectionsAreNotErrors(t *testing.T) {
	n := newClosingNode(t)
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.ln.Addr().String()} })
	client := newClient(t)
	for i, method := range []string{"GET", "POST", "GET", "POST", "PUT"} {
		body := ""
		if method != "GET" {
			body = "data"
		}
		if status, _, resp := do(t, client, method, r.url+"/x", body); status != 200 {
			t.Fatalf("request %d (%s) on a stale pooled connection: %d %s", i, method, status, resp)
		}
		<-n.closed // the node has closed this connection: the router's pooled copy is stale
	}
	if b := r.Table().lookup(n.ln.Addr().String()); b.state.failed(r.clock.Now()) {
		t.Fatal("a stale keep-alive connection marked the node failed")
	}
}

func TestTimeoutsAndClientCancel(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	n := staticNode(t, "n1", "/hang", hang)
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{n.Addr()}
		o.Settings.ResponseHeaderTimeout = 200 * time.Millisecond
	})
	// The client gives up first: no failure mark (the node is not at fault).
	c := newClient(t)
	c.Timeout = 100 * time.Millisecond
	if _, err := c.Get(r.url + "/hang/x"); err == nil {
		t.Fatal("the client should have timed out")
	}
	b := r.Table().lookup(n.Addr())
	waitFor(t, 5*time.Second, "the cancelled request to finish", func() error {
		if b.Inflight() != 0 {
			return io.EOF
		}
		return nil
	})
	if b.state.failed(r.clock.Now()) {
		t.Fatal("a client cancellation marked the node failed")
	}
	// The node does not answer in time: 504, not retried, the node marked.
	status, _, body := get(t, newClient(t), r.url+"/hang/x")
	if status != http.StatusGatewayTimeout || !strings.Contains(body, "did not answer in time") {
		t.Fatalf("header timeout: %d %q", status, body)
	}
	if !b.state.failed(r.clock.Now()) {
		t.Fatal("a node that timed out carries no failure mark")
	}
}

func TestPerAppCookie(t *testing.T) {
	sm := func(name string) *server.Server {
		m, err := session.NewManager(session.Options{Route: name, CookieName: "SHOPSESSION"})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Options{Name: name, HTTPAddr: "127.0.0.1:0", WorkDir: t.TempDir(), Sessions: m,
			Logger: slog.New(slog.DiscardHandler), Valves: server.ValveOptions{AccessLogOut: io.Discard}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Mount("shop", "/shop", counterApp(name)); err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		return srv
	}
	a, b := sm("alpha"), sm("beta")
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{a.Addr(), b.Addr()}
		o.AppCookies = map[string]string{"/": "SHOPSESSION"} // static nodes match every path at "/"
	})
	for u := 0; u < 3; u++ {
		client := newClient(t)
		_, first, _ := get(t, client, r.url+"/shop/inc")
		for i := 2; i <= 4; i++ {
			_, node, body := get(t, client, r.url+"/shop/inc")
			if c := decodeCounter(t, body); node != first || c.Count != i {
				t.Fatalf("user %d: request %d on %s (count %d), want %s", u, i, node, c.Count, first)
			}
		}
	}
}
