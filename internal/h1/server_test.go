package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve starts a Server with h on a loopback port; it is shut down when the test ends.
func serve(t *testing.T, h http.HandlerFunc, opt ...func(*Server)) (addr string, srv *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	for _, o := range opt {
		o(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), srv
}

// rawConn is a client connection that writes raw bytes and reads responses.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response to a request with method (HEAD responses have no body).
func (c *rawConn) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection (EOF with nothing more to read).
func (c *rawConn) closed() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	fmt.Fprintf(w, "%s %s host=%s len=%d body=%s", r.Method, r.URL.RequestURI(), r.Host, r.ContentLength, b)
}

func TestServerKeepAliveAndPipelining(t *testing.T) {
	addr, _ := serve(t, echo)
	c := dialRaw(t, addr)
	c.send("GET /a?x=1 HTTP/1.1\r\nHost: h1\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != 200 || body != "GET /a?x=1 host=h1 len=0 body=" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("first: %d %q (length %d)", resp.StatusCode, body, resp.ContentLength)
	}
	if resp.Header.Get("Date") == "" || resp.Close {
		t.Fatalf("header %v, close %v", resp.Header, resp.Close)
	}
	// Two requests in one write, the second with a body: answered in order on the same connection.
	c.send("POST /p HTTP/1.1\r\nHost: h1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nhost: h2\r\n\r\n")
	if _, body := c.read("POST"); body != "POST /p host=h1 len=5 body=hello" {
		t.Fatalf("pipelined POST: %q", body)
	}
	if _, body := c.read("GET"); body != "GET /b host=h2 len=0 body=" {
		t.Fatalf("pipelined GET: %q", body)
	}
	// Connection: close is honoured.
	c.send("GET /c HTTP/1.1\r\nHost: h1\r\nConnection: close\r\n\r\n")
	if resp, _ := c.read("GET"); !resp.Close {
		t.Fatal("no Connection: close in the answer to a closing request")
	}
	if !c.closed() {
		t.Fatal("connection still open after Connection: close")
	}
}

func TestServerChunkedAndContinue(t *testing.T) {
	addr, _ := serve(t, echo)
	c := dialRaw(t, addr)
	c.send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 1\r\n\r\n")
	if _, body := c.read("POST"); body != "POST /c host=h len=-1 body=abcde" {
		t.Fatalf("chunked: %q", body)
	}
	// 100-continue: the interim answer comes when the handler reads the body, not before.
	c.send("PUT /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim answer %q, %v", line, err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q", blank)
	}
	c.send("xyz")
	if _, body := c.read("PUT"); body != "PUT /e host=h len=3 body=xyz" {
		t.Fatalf("after continue: %q", body)
	}
	// A handler that answers without reading: no 100 Continue, and the body never sent is not waited for.
	addr2, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusRequestEntityTooLarge) })
	c2 := dialRaw(t, addr2)
	c2.send("PUT /e HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := c2.read("PUT"); resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("early answer: %d, close %v", resp.StatusCode, resp.Close)
	}
}

func TestServerRejectsAmbiguousRequests(t *testing.T) {
	addr, _ := serve(t, echo, func(s *Server) { s.MaxHeaderBytes = 2048 })
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"both lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"differing lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"signed length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"folded header", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 0\r\n\r\n", 400},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"coding in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"control in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", 400},
		{"bad request line", "GET /\r\nHost: h\r\n\r\n", 400},
		{"bad target", "GET  HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"expectation", "GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417},
		{"head too large", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 4000) + "\r\n\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tc.req)
			resp, body := c.read("GET")
			if resp.StatusCode != tc.status || !resp.Close || body == "" {
				t.Fatalf("got %d %q (close %v), want %d", resp.StatusCode, body, resp.Close, tc.status)
			}
			if !c.closed() {
				t.Fatal("the connection stays open after a refused request")
			}
		})
	}
}

func TestServerResponseFraming(t *testing.T) {
	big := strings.Repeat("z", 10000)
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream": // no length, flushed: chunked
			io.WriteString(w, "part1 ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
		case "/big": // no length, more than the server holds back: chunked
			io.WriteString(w, big)
		case "/length":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "12345")
		case "/short": // says 10, sends 3: the connection must close so the client sees the truncation
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("a 204 accepted a body")
			}
		}
	})
	c := dialRaw(t, addr)
	for _, tc := range []struct {
		path, body string
		chunked    bool
	}{{"/stream", "part1 part2", true}, {"/big", big, true}, {"/length", "12345", false}, {"/nocontent", "", false}} {
		c.send("GET " + tc.path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if body != tc.body || (len(resp.TransferEncoding) > 0) != tc.chunked || resp.Close {
			t.Fatalf("%s: %q, transfer encoding %v, close %v", tc.path, truncate(body), resp.TransferEncoding, resp.Close)
		}
	}
	c.send("HEAD /length HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body := c.read("HEAD"); resp.ContentLength != 5 || body != "" {
		t.Fatalf("HEAD: length %d, body %q", resp.ContentLength, body)
	}
	c.send("GET /short HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body read: %v, want unexpected EOF", err)
	}
	// HTTP/1.0: closed after the answer unless keep-alive was asked for.
	c10 := dialRaw(t, addr)
	c10.send("GET /length HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, body := c10.read("GET"); resp.Close || body != "12345" || resp.Proto != "HTTP/1.0" {
		t.Fatalf("1.0 keep-alive: close %v, %q, %s", resp.Close, body, resp.Proto)
	}
	c10.send("GET /stream HTTP/1.0\r\n\r\n")
	if resp, body := c10.read("GET"); !resp.Close || body != "part1 part2" {
		t.Fatalf("1.0 stream: close %v, %q", resp.Close, body)
	}
	if !c10.closed() {
		t.Fatal("HTTP/1.0 connection without keep-alive left open")
	}
}

func TestServerUnreadBody(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored") })
	c := dialRaw(t, addr)
	// A small unread body is discarded and the connection kept.
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("POST")
	if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "ignored" {
		t.Fatalf("after a small unread body: %d %q", resp.StatusCode, body)
	}
	// A large one closes the connection after the answer, which still arrives whole.
	c.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", 10<<20))
	go func() { _, _ = c.nc.Write(make([]byte, 1<<20)) }()
	if resp, body := c.read("POST"); body != "ignored" || !resp.Close {
		t.Fatalf("large unread body: %q, close %v", body, resp.Close)
	}
}

func TestServerHijackKeepsBufferedBytes(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer nc.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n') // sent together with the request head
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	c := dialRaw(t, addr)
	c.send("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly bytes\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, _ := c.br.ReadString('\n'); line != "echo early bytes\n" {
		t.Fatalf("after the upgrade: %q", line)
	}
}

func TestServerClientGoneCancelsContext(t *testing.T) {
	var fast, cancelled atomic.Int32
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			fast.Add(1)
			return
		}
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(10 * time.Second):
		}
	})
	// A quick request is not disturbed by the watch, and the connection keeps working after a
	// request that outlived the watch delay and ended normally.
	c := dialRaw(t, addr)
	c.send("GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	c.nc.Close() // the client gives up on a slow request: its context ends
	c2 := dialRaw(t, addr)
	c2.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	c2.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for cancelled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if cancelled.Load() != 1 {
		t.Fatal("the handler's context did not end when the client closed its connection")
	}
}

func TestServerPipelinedRequestDuringWatch(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(50 * time.Millisecond): // long enough for the watch to start
			case <-r.Context().Done():
				panic("context ended while the client waited")
			}
		}
		io.WriteString(w, r.URL.Path)
	})
	c := dialRaw(t, addr)
	c.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(20 * time.Millisecond)
	c.send("GET /next HTTP/1.1\r\nHost: h\r\n\r\n") // read by the watcher, kept for the next request
	if _, body := c.read("GET"); body != "/slow" {
		t.Fatalf("first: %q", body)
	}
	if _, body := c.read("GET"); body != "/next" {
		t.Fatalf("pipelined during the watch: %q", body)
	}
}

func TestServerPanicAndShutdown(t *testing.T) {
	release := make(chan struct{})
	addr, srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/wait":
			<-release
		}
		io.WriteString(w, "ok")
	})
	c := dialRaw(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if !c.closed() {
		t.Fatal("connection open after a handler panic")
	}
	idle := dialRaw(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	busy := dialRaw(t, addr)
	busy.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(20 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Fatal("Shutdown left an idle connection open")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a request ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if resp, body := busy.read("GET"); body != "ok" || !resp.Close {
		t.Fatalf("request finishing during Shutdown: %q, close %v", body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestServerWithNetHTTPClient(t *testing.T) {
	addr, _ := serve(t, echo)
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 { // keep-alive through Go's own client, bodies of every size
		body := strings.Repeat("b", i*997)
		resp, err := client.Post("http://"+addr+"/x", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST /x host=%s len=%d body=%s", addr, len(body), body); string(got) != want {
			t.Fatalf("request %d: %q", i, truncate(string(got)))
		}
	}
}

// parse runs the server's request reader over raw bytes, without a network.
func parse(data []byte) (*http.Request, []byte, error) {
	c := &serverConn{srv: &Server{MaxHeaderBytes: 8 << 10}, br: bufio.NewReaderSize(bytes.NewReader(data), bufSize),
		bw: bufio.NewWriter(io.Discard), tmpl: (&http.Request{}).WithContext(context.Background())}
	req, _, err := c.readRequest()
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	return req, body, err
}

// FuzzServerRequest checks that the request reader never panics and that a request it accepts is
// read the same way by net/http: method, target, host and, above all, where the body ends.
func FuzzServerRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"OPTIONS * HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, body, err := parse(data)
		if err != nil {
			return
		}
		std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return // stricter or looser elsewhere (net/http refuses some hosts this server lets through)
		}
		if std.Method != req.Method || std.RequestURI != req.RequestURI || std.Host != req.Host ||
			std.ContentLength != req.ContentLength || std.Close != req.Close {
			t.Fatalf("disagree on %q:\nh1:       %s %s host=%q len=%d close=%v\nnet/http: %s %s host=%q len=%d close=%v",
				data, req.Method, req.RequestURI, req.Host, req.ContentLength, req.Close,
				std.Method, std.RequestURI, std.Host, std.ContentLength, std.Close)
		}
		stdBody, stdErr := io.ReadAll(io.LimitReader(std.Body, 1<<20))
		if stdErr == nil && !bytes.Equal(stdBody, body) {
			t.Fatalf("body of %q: h1 %q, net/http %q", data, body, stdBody)
		}
	})
}

func TestServerLongRequestOutlivesIdleTimeout(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond): // longer than the idle timeout
			io.WriteString(w, "done")
		case <-r.Context().Done():
			http.Error(w, "cancelled", 500)
		}
	}, func(s *Server) { s.IdleTimeout, s.ReadHeaderTimeout = 100*time.Millisecond, 100*time.Millisecond })
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "done" {
		t.Fatalf("first request: %q", body)
	}
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n") // the second waits with the idle deadline of the first set
	if _, body := c.read("GET"); body != "done" {
		t.Fatalf("a request longer than the idle timeout was cancelled: %q", body)
	}
}

func TestServerResponseTrailers(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "7")
	})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "7" || resp.Header.Get("X-Sum") != "" {
		t.Fatalf("body %q, trailer %v, header %v", b, resp.Trailer, resp.Header)
	}
}

func TestServerRequestArrivingDuringHandler(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // shorter than the watch delay: nobody reads meanwhile
		io.WriteString(w, r.URL.Path)
	}, func(s *Server) { s.IdleTimeout = 3 * time.Second })
	c := dialRaw(t, addr)
	c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(500 * time.Microsecond)
	c.send("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n") // sent before the first answer came
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for _, want := range []string{"/1", "/2"} {
		if _, body := c.read("GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
	// A client that half-closes after its request gets its answer and the connection's end at once.
	c2 := dialRaw(t, addr)
	c2.send("GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
	_ = c2.nc.(*net.TCPConn).CloseWrite()
	start := time.Now()
	if _, body := c2.read("GET"); body != "/3" {
		t.Fatalf("half-closed client: %q", body)
	}
	if !c2.closed() || time.Since(start) > time.Second {
		t.Fatalf("half-closed connection ended after %v", time.Since(start))
	}
}

func TestServerShutdownServesANewConnectionsFirstRequest(t *testing.T) {
	addr, srv := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := dialRaw(t, addr) // connected, request not written yet
	time.Sleep(20 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body := c.read("GET"); body != "ok" || !resp.Close {
		t.Fatalf("first request on a connection made before Shutdown: %q, close %v", body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServerUnreadBodyOfAStalledClient(t *testing.T) {
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "early") })
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly part of it")
	start := time.Now()
	resp, body := c.read("POST") // the answer comes once the server gave up waiting for the rest
	if body != "early" || !resp.Close {
		t.Fatalf("%q, close %v", body, resp.Close)
	}
	if !c.closed() || time.Since(start) > 8*time.Second {
		t.Fatalf("a stalled body held the connection for %v", time.Since(start))
	}
}

// The wait for the next request keeps its deadline across a burst of requests (it is moved only once
// it is a sixteenth stale): the connection still closes after the idle timeout, not long before it,
// and a deadline a handler set never stands in for it.
func TestServerIdleDeadlineAfterBurst(t *testing.T) {
	const idle = 800 * time.Millisecond
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/short" {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		}
		io.WriteString(w, r.URL.Path)
	}, func(s *Server) { s.IdleTimeout, s.ReadHeaderTimeout = idle, idle })

	c := dialRaw(t, addr)
	for i := range 50 {
		c.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := c.read("GET"); body != "/a" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	last := time.Now()
	if !c.closed() {
		t.Fatal("the connection did not close after the idle timeout")
	}
	if took := time.Since(last); took < idle/2 || took > idle+time.Second {
		t.Fatalf("closed %v after the last answer, idle timeout %v", took, idle)
	}

	// A handler's own read deadline (20ms) right after a request that set the idle wait: the next
	// wait must get the idle timeout again, not keep the handler's deadline.
	c2 := dialRaw(t, addr)
	for _, path := range []string{"/a", "/short"} {
		c2.send("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := c2.read("GET"); body != path {
			t.Fatalf("%s: %q", path, body)
		}
	}
	time.Sleep(100 * time.Millisecond)
	c2.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c2.read("GET"); body != "/a" {
		t.Fatalf("after a handler's deadline: %q", body)
	}
}

// The idle wait's deadline is moved again once stale, and every other deadline (a watched handler's,
// a read body's) makes the next idle wait set its own: none of these connections may stay open
// forever or close while requests keep coming.
func TestServerIdleDeadlineRenewed(t *testing.T) {
	const idle = 800 * time.Millisecond
	addr, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow": // long enough to be watched (watchDelay, twice at most), short enough to keep idleSet fresh
			time.Sleep(20 * time.Millisecond)
		case "/post":
			_, _ = io.ReadAll(r.Body)
		}
		io.WriteString(w, r.URL.Path)
	}, func(s *Server) { s.IdleTimeout, s.ReadHeaderTimeout = idle, idle })

	get := func(c *rawConn, path string) {
		t.Helper()
		c.send("GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := c.read("GET"); body != path {
			t.Fatalf("%s: %q", path, body)
		}
	}
	closesAfterIdle := func(c *rawConn, what string) {
		t.Helper()
		last := time.Now()
		if !c.closed() {
			t.Fatalf("%s: the connection did not close after the idle timeout", what)
		}
		if took := time.Since(last); took < idle/2 {
			t.Fatalf("%s: closed %v after the last answer, idle timeout %v", what, took, idle)
		}
	}

	// Requests every 50ms for 1.2s, longer than the idle timeout: the deadline must move along.
	c := dialRaw(t, addr)
	for range 24 {
		get(c, "/a")
		time.Sleep(50 * time.Millisecond)
	}
	closesAfterIdle(c, "after a long train of requests")

	// A handler that ran long enough to be watched: the watcher cleared the deadline.
	c = dialRaw(t, addr)
	get(c, "/a")
	get(c, "/slow")
	closesAfterIdle(c, "after a watched handler")

	// A request whose body was read: its deadline was cleared for the body.
	c = dialRaw(t, addr)
	get(c, "/a")
	c.send("POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
	if _, body := c.read("POST"); body != "/post" {
		t.Fatalf("post: %q", body)
	}
	closesAfterIdle(c, "after a request with a body")
}
