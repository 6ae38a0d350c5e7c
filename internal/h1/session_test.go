package h1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sessionServer serves fast requests (answered "fast <path>"), and full ones ("full <path>"):
//
//	/sleep/<duration>  sleeps, then notes whether the request's context ended meanwhile
//	/wait              waits for release (or the context's end; 5 s at most)
//	/big/<n>           answers n bytes of pattern
//	/full/...          declined: Handler's (/full/sleep sleeps 3 ms there)
type sessionServer struct {
	addr    string
	srv     *Server
	release chan struct{}
	mu      sync.Mutex
	ctxErrs map[string]error // path -> the request context's error when its handler ended
}

func newSessionServer(t *testing.T, opt ...func(*Server)) *sessionServer {
	t.Helper()
	ss := &sessionServer{release: make(chan struct{}), ctxErrs: map[string]error{}}
	fast := fastFunc(func(x *Exchange) bool {
		path := string(x.Target)
		body := []byte("fast " + path)
		switch {
		case strings.HasPrefix(path, "/full/"):
			return false
		case strings.HasPrefix(path, "/sleep/"):
			d, _ := time.ParseDuration(strings.TrimPrefix(path, "/sleep/"))
			x.Accept()
			time.Sleep(d)
		case path == "/wait":
			x.Accept()
			select {
			case <-ss.release:
			case <-x.Context().Done():
			case <-time.After(5 * time.Second): // a test that fails ends anyway
			}
		case strings.HasPrefix(path, "/big/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(path, "/big/"))
			body = pattern(n, 7)
		}
		ss.mu.Lock()
		ss.ctxErrs[path] = x.Context().Err()
		ss.mu.Unlock()
		fmt.Fprintf(x.Writer(), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		if len(body) > 4<<10 {
			if err := x.WriteBuffers(body); err != nil {
				x.CloseAfter()
			}
		} else {
			_, _ = x.Writer().Write(body)
		}
		return true
	})
	ss.addr, ss.srv = serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/full/sleep" {
			time.Sleep(3 * time.Millisecond) // shorter than watchDelay: nothing reads the connection meanwhile
		}
		io.WriteString(w, "full "+r.URL.Path)
	}, append([]func(*Server){func(s *Server) { s.Fast = fast }}, opt...)...)
	return ss
}

// dialWarm connects and makes one request, so that the connection's session runs.
func (ss *sessionServer) dialWarm(t *testing.T) *rawConn {
	t.Helper()
	c := dialRaw(t, ss.addr)
	c.send("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	return c
}

func (ss *sessionServer) ctxErr(path string) (error, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	err, ok := ss.ctxErrs[path]
	return err, ok
}

// TestSessionRequestArrivingDuringHandler: a request (or the client's half-close) that arrives
// while a fast handler runs inside the session must be noticed once the handler returns, whether
// the handler was watched or not. A session that waited without reading would hang here.
func TestSessionRequestArrivingDuringHandler(t *testing.T) {
	ss := newSessionServer(t)
	for _, d := range []string{"2ms", "40ms"} { // shorter and longer than watchDelay
		c := ss.dialWarm(t)
		_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		c.send("GET /sleep/" + d + " HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(time.Millisecond)
		c.send("GET /second-" + d + " HTTP/1.1\r\nHost: h\r\n\r\n") // before the first answer
		for _, want := range []string{"fast /sleep/" + d, "fast /second-" + d} {
			if _, body := c.read("GET"); body != want {
				t.Fatalf("%s: got %q, want %q", d, body, want)
			}
		}
		if err, _ := ss.ctxErr("/sleep/" + d); err != nil {
			t.Fatalf("%s: a pipelined request ended the handler's context: %v", d, err)
		}

		// A half-close during the handler: the answer, then the connection's end at once.
		c.send("GET /sleep/" + d + "?half HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(time.Millisecond)
		_ = c.nc.(*net.TCPConn).CloseWrite()
		start := time.Now()
		if _, body := c.read("GET"); body != "fast /sleep/"+d+"?half" {
			t.Fatalf("%s, half-closed: %q", d, body)
		}
		if !c.closed() || time.Since(start) > time.Second {
			t.Fatalf("%s: the half-closed connection ended after %v", d, time.Since(start))
		}
	}
}

// TestSessionClientGone: a client that closes or resets its connection while a fast handler waits
// inside the session ends the request's context (the watch polls the connection).
func TestSessionClientGone(t *testing.T) {
	ss := newSessionServer(t)
	for _, reset := range []bool{false, true} {
		c := ss.dialWarm(t)
		c.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(20 * time.Millisecond) // past watchDelay
		if reset {
			_ = c.nc.(*net.TCPConn).SetLinger(0)
		}
		c.nc.Close()
		deadline := time.Now().Add(5 * time.Second)
		err, ok := ss.ctxErr("/wait")
		for !ok && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			err, ok = ss.ctxErr("/wait")
		}
		if !ok || err == nil {
			t.Fatalf("reset %v: the client's leaving did not end the context (ended %v, err %v)", reset, ok, err)
		}
		ss.mu.Lock()
		delete(ss.ctxErrs, "/wait")
		ss.mu.Unlock()
	}
}

// TestSessionIdleTimeoutAndShutdown: a connection waiting in its session closes when the idle
// timeout passes, and at once on Shutdown, while a request running in another session finishes.
func TestSessionIdleTimeoutAndShutdown(t *testing.T) {
	const idle = 300 * time.Millisecond
	ss := newSessionServer(t, func(s *Server) { s.IdleTimeout = idle })
	c := dialRaw(t, ss.addr)
	c.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	last := time.Now()
	if !c.closed() {
		t.Fatal("the idle connection stayed open")
	}
	if took := time.Since(last); took < idle/2 || took > idle+time.Second {
		t.Fatalf("closed %v after the last answer, idle timeout %v", took, idle)
	}

	waiting := dialRaw(t, ss.addr)
	waiting.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
	waiting.read("GET")
	busy := dialRaw(t, ss.addr)
	busy.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(20 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- ss.srv.Shutdown(context.Background()) }()
	start := time.Now()
	if !waiting.closed() || time.Since(start) > idle/2 {
		t.Fatalf("Shutdown closed a waiting connection after %v", time.Since(start))
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a request ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(ss.release)
	if _, body := busy.read("GET"); body != "fast /wait" {
		t.Fatalf("the request running during Shutdown: %q", body)
	}
	if !busy.closed() {
		t.Fatal("the busy connection stayed open after Shutdown")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSessionLargeAnswerToSlowReader: an answer larger than the socket takes finishes through the
// poller (a direct write that finds the socket full waits for room), and the session goes on.
func TestSessionLargeAnswerToSlowReader(t *testing.T) {
	ss := newSessionServer(t)
	c := dialRaw(t, ss.addr)
	const n = 8 << 20
	c.send("GET /big/" + strconv.Itoa(n) + " HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // the server fills the socket meanwhile
	_, body := c.read("GET")
	if !bytes.Equal([]byte(body), pattern(n, 7)) {
		t.Fatalf("large answer: %d bytes, or not the ones sent", len(body))
	}
	c.send("GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "fast /after" {
		t.Fatalf("after the large answer: %q", body)
	}
}

// TestSessionHandsBack: what the session does not serve (a head that arrives in pieces, a declined
// request, a request with a body) goes to the serve loop, and the next request is the session's again.
func TestSessionHandsBack(t *testing.T) {
	ss := newSessionServer(t)
	c := dialRaw(t, ss.addr)
	c.send("GET /a HTTP/1.1\r\nHo")
	time.Sleep(20 * time.Millisecond)
	c.send("st: h\r\n\r\n")
	if _, body := c.read("GET"); body != "full /a" { // the head was not whole when it was looked at
		t.Fatalf("split head: %q", body)
	}
	for _, q := range []struct{ req, want string }{
		{"GET /b HTTP/1.1\r\nHost: h\r\n\r\n", "fast /b"},
		{"GET /full/c HTTP/1.1\r\nHost: h\r\n\r\n", "full /full/c"},
		{"GET /d HTTP/1.1\r\nHost: h\r\n\r\n", "fast /d"},
		{"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", "full /e"},
		{"GET /f HTTP/1.1\r\nHost: h\r\n\r\n", "fast /f"},
		{"GET /g HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("x", 6<<10) + "\r\n\r\n", "full /g"}, // over the read buffer
		{"GET /h HTTP/1.1\r\nHost: h\r\n\r\n", "fast /h"},
	} {
		c.send(q.req)
		if _, body := c.read(strings.Fields(q.req)[0]); body != q.want {
			t.Fatalf("%.30q: %q, want %q", q.req, body, q.want)
		}
	}
}

// waitCtxErr waits up to 5 s for the handler of path to end and returns its context's error.
func (ss *sessionServer) waitCtxErr(t *testing.T, path string) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err, ok := ss.ctxErr(path); ok {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handler of %s did not end", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSessionServerClose: Close does not wait for a handler running inside a session (closing a
// connection waits for its raw read, which lasts as long as the handler): it ends the handler's
// context and the handler's answer is not sent.
func TestSessionServerClose(t *testing.T) {
	ss := newSessionServer(t)
	c := ss.dialWarm(t)
	c.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(30 * time.Millisecond)
	start := time.Now()
	_ = ss.srv.Close()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %v: it waited for the handler", took)
	}
	if err := ss.waitCtxErr(t, "/wait"); err == nil {
		t.Fatal("Close did not end the running request's context")
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if b, _ := io.ReadAll(c.br); strings.Contains(string(b), "fast /wait") {
		t.Fatalf("the answer went out after Close: %q", b)
	}
}

// TestSessionHalfCloseWithRequest: a client that sends its request and its close (FIN) together
// gets its answer and then the connection's end at once, not at the idle timeout (or never, with no
// timeout): the read that took the request does not show the close behind it, and the poller's
// one edge may have been spent on both. Whether the session waited already, is new, or starts
// after a request served by Handler.
func TestSessionHalfCloseWithRequest(t *testing.T) {
	for _, timeouts := range []bool{true, false} {
		ss := newSessionServer(t, func(s *Server) {
			if !timeouts {
				s.IdleTimeout, s.ReadHeaderTimeout = 0, 0
			}
		})
		for _, mode := range []string{"waiting", "new", "after-full"} {
			for i := range 10 {
				nc, err := net.Dial("tcp", ss.addr)
				if err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(nc)
				switch mode {
				case "waiting":
					io.WriteString(nc, "GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
					if _, err := http.ReadResponse(br, &http.Request{Method: "GET"}); err != nil {
						t.Fatal(err)
					}
					_, _ = br.Discard(br.Buffered())
					time.Sleep(10 * time.Millisecond)
				case "after-full":
					io.WriteString(nc, "GET /full/sleep HTTP/1.1\r\nHost: h\r\n\r\n")
					time.Sleep(time.Millisecond) // the next request and the close come during the full handler
				}
				io.WriteString(nc, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
				_ = nc.(*net.TCPConn).CloseWrite()
				_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
				start := time.Now()
				all, err := io.ReadAll(br)
				took := time.Since(start)
				nc.Close()
				if !strings.Contains(string(all), "fast /b") {
					t.Fatalf("timeouts %v, %s #%d: %q %v", timeouts, mode, i, all, err)
				}
				if err != nil || took > 500*time.Millisecond {
					t.Fatalf("timeouts %v, %s #%d: the connection ended %v after the close (%v)", timeouts, mode, i, took, err)
				}
			}
		}
	}
}

// TestSessionPipelinedThenHalfClose: a client that pipelines its next request and then half-closes
// while a watched handler runs is still there: neither request's context ends.
func TestSessionPipelinedThenHalfClose(t *testing.T) {
	ss := newSessionServer(t)
	c := ss.dialWarm(t)
	c.send("GET /sleep/150ms HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(30 * time.Millisecond) // the handler is watched
	_ = c.nc.(*net.TCPConn).CloseWrite()
	for _, want := range []string{"fast /sleep/150ms", "fast /next"} {
		if _, body := c.read("GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
	for _, path := range []string{"/sleep/150ms", "/next"} {
		if err, _ := ss.ctxErr(path); err != nil {
			t.Fatalf("%s: the context ended although the client was there: %v", path, err)
		}
	}
	if !c.closed() {
		t.Fatal("the half-closed connection stayed open")
	}
}
