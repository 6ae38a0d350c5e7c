package router

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/session"
)

// echoApp answers the request headers it received as JSON.
func echoApp(node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Node", node)
		w.Header().Set("Content-Type", "application/json")
		h := map[string]string{"Host": r.Host}
		for k, v := range r.Header {
			h[k] = strings.Join(v, ", ")
		}
		_ = json.NewEncoder(w).Encode(h)
	})
}

func echo(t *testing.T, url string, hdr ...string) (map[string]string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("%d: %v", resp.StatusCode, err)
	}
	return got, resp
}

func TestForwardedTraceAndHopHeaders(t *testing.T) {
	n := staticNode(t, "n1", "/echo", echoApp("n1"))
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()} })

	got, resp := echo(t, r.url+"/echo", "X-Forwarded-For", "6.6.6.6", "Connection", "X-Hop", "X-Hop", "secret",
		"Proxy-Authorization", "Basic eA==", "X-Herd-Node", n.Addr(), "Traceparent", "00-zzzz-bad")
	tp := got["Traceparent"]
	trace, span, flags, ok := parseTraceparent(tp)
	switch {
	case got["X-Forwarded-For"] != "127.0.0.1":
		t.Errorf("X-Forwarded-For %q: the client's spoofed chain must be dropped", got["X-Forwarded-For"])
	case got["X-Forwarded-Proto"] != "http" || got["X-Forwarded-Host"] != r.Addr() || got["Host"] != r.Addr():
		t.Errorf("forwarded proto/host: %q %q host %q", got["X-Forwarded-Proto"], got["X-Forwarded-Host"], got["Host"])
	case got["X-Hop"] != "" || got["Proxy-Authorization"] != "" || got["X-Herd-Node"] != "":
		t.Errorf("hop-by-hop or pin headers forwarded: %v", got)
	case !ok || flags != 1:
		t.Errorf("traceparent %q not generated validly", tp)
	case got["X-B3-Traceid"] != trace || got["X-B3-Spanid"] != span || got["X-B3-Parentspanid"] != "" || got["X-B3-Sampled"] != "1":
		t.Errorf("B3 headers %v do not match traceparent %q", got, tp)
	case got["X-Request-Id"] != trace || resp.Header.Get("X-Request-Id") != trace:
		t.Errorf("request id: forwarded %q, answered %q, want the trace id %q", got["X-Request-Id"], resp.Header.Get("X-Request-Id"), trace)
	}

	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	got, resp = echo(t, r.url+"/echo", "Traceparent", in, "Tracestate", "vendor=x", "X-Request-Id", "req-42")
	trace, span, _, ok = parseTraceparent(got["Traceparent"])
	if !ok || trace != "4bf92f3577b34da6a3ce929d0e0e4736" || span == "00f067aa0ba902b7" ||
		got["X-B3-Parentspanid"] != "00f067aa0ba902b7" || got["Tracestate"] != "vendor=x" ||
		got["X-Request-Id"] != "req-42" || resp.Header.Get("X-Request-Id") != "req-42" {
		t.Errorf("continued trace: %v", got)
	}

	got, _ = echo(t, r.url+"/echo", "X-B3-TraceId", "463ac35c9f6413ad", "X-B3-SpanId", "a2fb4a1d1a96d312", "X-B3-Sampled", "0")
	if got["Traceparent"] == "" || !strings.HasPrefix(got["Traceparent"], "00-0000000000000000463ac35c9f6413ad-") ||
		!strings.HasSuffix(got["Traceparent"], "-00") || got["X-B3-Traceid"] != "463ac35c9f6413ad" ||
		got["X-B3-Parentspanid"] != "a2fb4a1d1a96d312" || got["X-B3-Sampled"] != "0" {
		t.Errorf("B3 continued trace: %v", got)
	}
}

func TestMalformedInputGetsCleanAnswers(t *testing.T) {
	n := staticNode(t, "n1")
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()} })
	client := newClient(t)
	for _, cookie := range []string{
		"JSESSIONID=<script>", "JSESSIONID=" + strings.Repeat("a", 5000), "JSESSIONID=\"unterminated",
		"JSESSIONID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.unknown-node", ";;;=;JSESSIONID", "JSESSIONID=%00%ff.node",
	} {
		if status, node, body := get(t, client, r.url+"/counter/get", "Cookie", cookie); status != 200 || node != "n1" {
			t.Errorf("cookie %.40q: %d %q %s", cookie, status, node, body)
		}
	}
	if status, _, body := get(t, client, r.url+"/counter/get", "X-Herd-Node", "nosuch"); status != 503 ||
		!strings.Contains(body, `pinned node "nosuch"`) || !strings.Contains(body, "request id") {
		t.Errorf("unknown pin: %d %q", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, r.url+"/counter/get", nil)
	req.Header.Set("X-Request-Id", "has spaces and <tags>")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); len(id) != 32 || !lowerHex(id) {
		t.Errorf("an unsafe X-Request-Id was kept: %q", id)
	}
	// Raw socket: an oversized header block and a garbage request line.
	for _, raw := range []string{
		"GET /counter/get HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 100<<10) + "\r\n\r\n",
		"GARBAGE\r\n\r\n",
		"GET /counter/get HTTP/1.1\r\nHost: x\r\nCookie: JSESSIONID=\x01\xff\r\n\r\n",
		"GET /counter/get HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
	} {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("raw %.30q: %v %v, want a 4xx", raw, resp, err)
		}
	}
}

func TestBodyLimitAndStreaming(t *testing.T) {
	release := make(chan struct{})
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		<-release
		_, _ = io.WriteString(w, "second\n")
		w.Header().Set("X-Checksum", "c0ffee")
	})
	n := staticNode(t, "n1", "/stream", stream)
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{n.Addr()}
		o.MaxBodyBytes = 1024
	})
	client := newClient(t)
	if status, _, body := do(t, client, http.MethodPost, r.url+"/counter/inc", strings.Repeat("x", 2048)); status != 413 ||
		!strings.Contains(body, "too large") {
		t.Errorf("declared oversize body: %d %q", status, body)
	}
	req, _ := http.NewRequest(http.MethodPost, r.url+"/counter/inc", io.MultiReader(strings.NewReader(strings.Repeat("y", 4096))))
	req.ContentLength = -1 // chunked: the limit trips while streaming
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked oversize body: %d", resp.StatusCode)
	}
	if status, _, _ := do(t, client, http.MethodPost, r.url+"/counter/inc", strings.Repeat("z", 1000)); status != 200 {
		t.Errorf("body under the limit: %d", status)
	}
	// Streaming: the first line arrives while the node still holds the response open.
	resp, err = client.Get(r.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line := make(chan string, 1)
	go func() { l, _ := br.ReadString('\n'); line <- l }()
	select {
	case l := <-line:
		if l != "first\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first chunk was buffered by the router")
	}
	close(release)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Fatalf("rest %q", rest)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "c0ffee" {
		t.Fatalf("the node's trailer did not come through: %v", resp.Trailer)
	}
}

// wsApp: a plain GET creates a session; an Upgrade: websocket request switches protocols and echoes
// each line prefixed with the node name.
func wsApp(node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			if _, err := session.FromRequest(r).Session(true); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("X-Node", node)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Node: " + node + "\r\n\r\n")
		_ = brw.Flush()
		for {
			l, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString(node + ": " + l)
			_ = brw.Flush()
		}
	})
}

func TestWebSocketUpgradesStick(t *testing.T) {
	c := newCluster(t)
	for _, name := range []string{"node1", "node2", "node3"} {
		c.addNode(name, map[string]http.Handler{"/ws": wsApp(name)})
		c.nodes[name].setApps(t, appAt("counter", "/counter"), appAt("ws", "/ws"))
	}
	r := c.addRouter(nil)
	r.waitRoutable(t, "/ws", "node1", "node2", "node3")
	for u := 0; u < 3; u++ {
		client := newClient(t)
		resp, err := client.Get(r.url + "/ws/chat")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		node := resp.Header.Get("X-Node")
		var cookie string
		for _, ck := range resp.Cookies() {
			if ck.Name == "JSESSIONID" {
				cookie = ck.Value
			}
		}
		if _, route, err := session.ParseCookieValue(cookie); err != nil || route != node {
			t.Fatalf("session cookie %q from %s: %v", cookie, node, err)
		}
		conn, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nCookie: JSESSIONID=%s\r\n\r\n", cookie)
		br := bufio.NewReader(conn)
		up, err := http.ReadResponse(br, nil)
		if err != nil || up.StatusCode != http.StatusSwitchingProtocols || up.Header.Get("X-Node") != node {
			t.Fatalf("upgrade: %v %v (want 101 from %s)", up, err, node)
		}
		for i := 0; i < 3; i++ {
			fmt.Fprintf(conn, "hello %d\n", i)
			if l, err := br.ReadString('\n'); err != nil || l != fmt.Sprintf("%s: hello %d\n", node, i) {
				t.Fatalf("echo %q %v, want it from %s", l, err, node)
			}
		}
		conn.Close()
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	n := staticNode(t, "n1", "/slow", slow)
	ln := listen(t)
	r, err := New(Options{Listener: ln, Settings: Settings{Backends: []string{n.Addr()}, HealthInterval: time.Hour,
		DrainTimeout: 5 * time.Second}, Logger: tLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	result := make(chan string, 1)
	go func() {
		resp, err := newClient(t).Get("http://" + r.Addr() + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(context.Background()) }()
	waitFor(t, 5*time.Second, "the listener to close", func() error {
		c, err := net.Dial("tcp", r.Addr())
		if err == nil {
			c.Close()
			return fmt.Errorf("still accepting")
		}
		return nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if got := <-result; got != "200 done" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := r.Start(context.Background()); err != ErrShutdown {
		t.Fatalf("Start after Shutdown: %v", err)
	}
}

func TestReloadSwapsSettings(t *testing.T) {
	a, b := staticNode(t, "alpha"), staticNode(t, "beta")
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{a.Addr()} })
	for i := 0; i < 3; i++ {
		if _, node, _ := get(t, newClient(t), r.url+"/counter/get"); node != "alpha" {
			t.Fatalf("before reload: %s", node)
		}
	}
	if err := r.Reload(Settings{Policy: "random"}); err == nil || !strings.Contains(err.Error(), "Settings.Policy") {
		t.Fatalf("bad policy accepted: %v", err)
	}
	if err := r.Reload(Settings{Policy: PolicyLeastConnections, Backends: []string{a.Addr(), b.Addr()},
		DialTimeout: time.Second, HealthInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if s := r.Settings(); s.Policy != PolicyLeastConnections || len(s.Backends) != 2 || s.DialTimeout != time.Second {
		t.Fatalf("settings after reload: %+v", s)
	}
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		_, node, _ := get(t, newClient(t), r.url+"/counter/get")
		seen[node] = true
	}
	if !seen["beta"] || !seen["alpha"] {
		t.Fatalf("after adding beta, requests went to %v", seen)
	}
}

func TestTLSAndHTTP2(t *testing.T) {
	n := staticNode(t, "n1", "/echo", echoApp("n1"))
	cert, pool := selfSigned(t)
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{n.Addr()}
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + r.Addr() + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&got)
	if resp.Proto != "HTTP/2.0" || got["X-Forwarded-Proto"] != "https" || resp.Header.Get("X-Node") != "n1" {
		t.Fatalf("proto %s, forwarded proto %q, node %q", resp.Proto, got["X-Forwarded-Proto"], resp.Header.Get("X-Node"))
	}
}

func TestH2C(t *testing.T) {
	n := staticNode(t, "n1")
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()}; o.H2C = true })
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(r.url + "/counter/get")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 {
		t.Fatalf("h2c: %s %d", resp.Proto, resp.StatusCode)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herd-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestUpgradeWithBodyGoesAsAPlainRequest(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Upgrade") != "" {
			w.WriteHeader(http.StatusTeapot) // the router must not ask for the switch
			return
		}
		_, _ = io.WriteString(w, "plain:"+string(b))
	})
	n := staticNode(t, "n1", "/ws", app)
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()} })
	req, _ := http.NewRequest(http.MethodPost, r.url+"/ws/x", strings.NewReader("hello"))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "plain:hello" {
		t.Fatalf("upgrade request with a body: %d %q", resp.StatusCode, b)
	}
}

// TestEarlyHintsRelayed: a node's 103 Early Hints reaches the client ahead of the final answer, and
// its fields stay out of that answer; with Expect: 100-continue the client gets exactly one 100.
func TestEarlyHintsRelayed(t *testing.T) {
	hints := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</hints/a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	})
	n := staticNode(t, "n1", "/hints", hints)
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()} })
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, r.url+"/hints/", nil)
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(got) != 1 || got[0] != "103 </hints/a.css>; rel=preload" {
		t.Fatalf("interim answers at the client: %q", got)
	}
	if resp.StatusCode != 200 || string(body) != "final" || resp.Header.Get("Link") != "" || resp.Header.Get(hdrRequestID) == "" {
		t.Fatalf("final answer %d %q, Link %q, request id %q", resp.StatusCode, body, resp.Header.Get("Link"), resp.Header.Get(hdrRequestID))
	}

	// Expect: 100-continue: one 100 (the router's), then the final answer.
	c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "POST /counter/inc HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	br := bufio.NewReader(c)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue first: %v %v", cont, err)
	}
	_, _ = io.WriteString(c, "hello")
	final, err := http.ReadResponse(br, nil)
	if err != nil || final.StatusCode != 200 {
		t.Fatalf("after the body: %v %v (a second 100?)", final, err)
	}
}
