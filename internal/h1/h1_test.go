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
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server is a real HTTP server on loopback that counts the connections it accepted.
func server(t *testing.T, h http.HandlerFunc) (addr string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), conns
}

func get(t *testing.T, tr *Transport, addr, path string) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKeepAliveAndClose(t *testing.T) {
	addr, conns := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	tr := New(Config{DialTimeout: time.Second})
	for i := 0; i < 5; i++ {
		if got := get(t, tr, addr, "/a"); got != "ok /a" {
			t.Fatalf("body %q", got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("5 sequential requests used %d connections, want 1 (keep-alive)", n)
	}
	tr.Close()
	get(t, tr, addr, "/b") // dials: the pool was emptied
	get(t, tr, addr, "/c") // dials again: after Close nothing goes back to the pool
	if n := conns.Load(); n != 3 {
		t.Fatalf("after Close: %d connections in all, want 3", n)
	}
}

func TestDialErrorAndStaleConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	tr := New(Config{DialTimeout: time.Second})
	req, _ := http.NewRequest("GET", "http://"+dead+"/", nil)
	_, err = tr.RoundTrip(req)
	var de *DialError
	if !errors.As(err, &de) || de.Addr != dead {
		t.Fatalf("refused connection: got %v, want a *DialError for %s", err, dead)
	}

	// The server closes its first connection once the response is out: the pooled copy is stale
	// when the next request takes it, and that request must go through on a fresh connection.
	var accepted atomic.Int32
	closed := make(chan struct{})
	var first net.Conn
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine") }))
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			if accepted.Add(1) == 1 {
				first = c
			}
		case http.StateIdle:
			if c == first {
				c.Close()
			}
		case http.StateClosed:
			if c == first {
				close(closed)
			}
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	get(t, tr, addr, "/")
	<-closed
	tr.mu.Lock()
	pooled := len(tr.idle[addr])
	tr.mu.Unlock()
	if pooled != 1 {
		t.Fatalf("%d pooled connections, want 1", pooled)
	}
	if got := get(t, tr, addr, "/"); got != "fine" {
		t.Fatalf("body %q", got)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the stale one replaced)", n)
	}
}

func TestCloseAddrFailsWaitingRequest(t *testing.T) {
	release := make(chan struct{})
	addr, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := New(Config{DialTimeout: time.Second})
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr.mu.Lock()
		n := len(tr.open[addr])
		tr.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tr.CloseAddr(addr)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrGone) {
			t.Fatalf("got %v, want ErrGone", err)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Fatalf("error %q does not name %s", err, addr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not fail after CloseAddr")
	}
}

// FuzzWriteSimple checks the hand-written request head against req.Write: both, read back by
// net/http, give the same request.
func FuzzWriteSimple(f *testing.F) {
	f.Add("GET", "/a/b?c=d", "example.com:8080", "X-A", " v1 ", "v2", true)
	f.Add("HEAD", "/", "", "User-Agent", "", "curl/8", false)
	f.Add("GET", "/x%20y", "h", "Cookie", "JSESSIONID=abc.n1", "a\r\nb", true)
	f.Fuzz(func(t *testing.T, method, path, host, key, v1, v2 string, withUA bool) {
		req, err := http.NewRequest(method, "http://node"+path, nil)
		if err != nil || !validKey(key) {
			return
		}
		req.Host = host
		req.Header[key] = []string{v1, v2}
		if withUA {
			req.Header["User-Agent"] = []string{v2, v1}
		}
		var got, want strings.Builder
		gw, ww := bufio.NewWriter(&got), bufio.NewWriter(&want)
		if !writeSimple(gw, req) {
			return
		}
		if err := req.Write(ww); err != nil {
			return
		}
		gw.Flush()
		ww.Flush()
		g, gerr := http.ReadRequest(bufio.NewReader(strings.NewReader(got.String())))
		w, werr := http.ReadRequest(bufio.NewReader(strings.NewReader(want.String())))
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("readable %v vs %v:\n%q\n%q", gerr, werr, got.String(), want.String())
		}
		if gerr != nil {
			return
		}
		if g.Method != w.Method || g.RequestURI != w.RequestURI || g.Host != w.Host || !reflect.DeepEqual(g.Header, w.Header) {
			t.Fatalf("differ:\n%q\n%q", got.String(), want.String())
		}
	})
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return http.CanonicalHeaderKey(k) == k
}

// FuzzReadResponse checks the response reader against http.ReadResponse: on a response both read,
// status, length, header, body and trailer agree; it never panics.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: 9\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 200\r\nX-F: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		req := &http.Request{Method: http.MethodGet}
		if head {
			req.Method = http.MethodHead
		}
		got, gerr := readResponse(bufio.NewReader(bytes.NewReader(data)), req)
		want, werr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), req)
		if gerr != nil || werr != nil {
			return // either may be stricter; what both accept must agree
		}
		if got.StatusCode < 200 && got.StatusCode == want.StatusCode {
			return // an interim answer: the client reads the next one, nothing else of it is used
		}
		gb, gberr := io.ReadAll(got.Body)
		wb, wberr := io.ReadAll(want.Body)
		bodyless := head || got.StatusCode == http.StatusNoContent || got.StatusCode == http.StatusNotModified
		if got.StatusCode != want.StatusCode || (!bodyless && got.ContentLength != want.ContentLength) || got.Close != want.Close ||
			!reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) {
			t.Fatalf("head of %q:\nh1:       %d len=%d close=%v te=%v\nnet/http: %d len=%d close=%v te=%v", data,
				got.StatusCode, got.ContentLength, got.Close, got.TransferEncoding,
				want.StatusCode, want.ContentLength, want.Close, want.TransferEncoding)
		}
		if gberr == nil && wberr == nil && !bytes.Equal(gb, wb) {
			t.Fatalf("body of %q: h1 %q, net/http %q", data, gb, wb)
		}
		if gberr == nil && wberr == nil && len(want.Trailer) > 0 && !reflect.DeepEqual(got.Trailer, want.Trailer) {
			t.Fatalf("trailer of %q: h1 %v, net/http %v", data, got.Trailer, want.Trailer)
		}
	})
}

func TestLeftoverBytesCloseTheConnection(t *testing.T) {
	// A broken backend: a HEAD answer followed by bytes nobody asked for.
	addr := rawBackend(t, func(nc net.Conn, req *http.Request) bool {
		if req.Method == http.MethodHead {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
			return true
		}
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
		return true
	})
	tr := New(Config{DialTimeout: time.Second})
	defer tr.Close()
	req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(20 * time.Millisecond) // the extra bytes are in
	if got := get(t, tr, addr, "/"); got != "real" {
		t.Fatalf("the next request got %q: bytes left over from the previous answer", got)
	}
}

// rawBackend serves hand-written answers on a loopback port until the test ends: serve answers one
// request on nc and says whether the connection stays open. It returns the address.
func rawBackend(t *testing.T, serve func(nc net.Conn, req *http.Request) bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil || !serve(nc, req) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestInterimAnswers(t *testing.T) {
	// /hints: two interim answers, then the final one; /flood: interim answers without end.
	addr := rawBackend(t, func(nc net.Conn, req *http.Request) bool {
		if req.URL.Path == "/flood" {
			for range 100 {
				if _, err := io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\nLink: </x.css>\r\n\r\n"); err != nil {
					break
				}
			}
			return false
		}
		io.WriteString(nc, "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	tr := New(Config{DialTimeout: time.Second})
	defer tr.Close()
	url := "http://" + addr

	var got []string
	req, _ := http.NewRequest(http.MethodGet, url+"/hints", nil)
	resp, err := tr.RoundTripInterim(req, func(code int, h http.Header) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := []string{"102 ", "103 </a.css>; rel=preload"}; !reflect.DeepEqual(got, want) || resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("interim %q, final %d %q", got, resp.StatusCode, body)
	}

	// Without a callback they go to the request's trace hook (what httputil.ReverseProxy relays).
	got = nil
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ = http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url+"/hints", nil)
	if resp, err = tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 2 || got[1] != "103 </a.css>; rel=preload" {
		t.Fatalf("trace hook saw %q", got)
	}

	// An error from the callback ends the round trip with it.
	stop := errors.New("no hints wanted")
	req, _ = http.NewRequest(http.MethodGet, url+"/hints", nil)
	if _, err := tr.RoundTripInterim(req, func(int, http.Header) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: got %v", err)
	}

	// A peer that sends nothing but interim answers is cut off.
	req, _ = http.NewRequest(http.MethodGet, url+"/flood", nil)
	n := 0
	_, err = tr.RoundTripInterim(req, func(int, http.Header) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "interim") || n != maxInterim {
		t.Fatalf("endless interim answers: %d delivered, err %v", n, err)
	}
}

// headRecorder records the header fields each WriteHeader call went out with.
type headRecorder struct {
	h     http.Header
	heads []string
}

func (r *headRecorder) Header() http.Header         { return r.h }
func (r *headRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *headRecorder) WriteHeader(code int) {
	r.heads = append(r.heads, fmt.Sprintf("%d Link=%q X-Request-Id=%q", code, r.h.Values("Link"), r.h.Values("X-Request-Id")))
}

func TestRelayInterimKeepsTheFinalAnswersFields(t *testing.T) {
	w := &headRecorder{h: http.Header{"X-Request-Id": {"rid-1"}}}
	RelayInterim(w, http.StatusContinue, http.Header{"Link": {"</c.css>"}}) // not relayed
	RelayInterim(w, http.StatusEarlyHints, http.Header{"Link": {"</a.css>"}, "X-Request-Id": {"from-app"}})
	want := []string{`103 Link=["</a.css>"] X-Request-Id=["from-app"]`}
	if !reflect.DeepEqual(w.heads, want) {
		t.Fatalf("interim heads %q, want %q", w.heads, want)
	}
	if !reflect.DeepEqual(w.h, http.Header{"X-Request-Id": {"rid-1"}}) {
		t.Fatalf("header after the interim answer: %v, want only the field set before it", w.h)
	}
}

// A peer that writes past its answer once the connection is back in the pool: with CheckIdle those
// bytes are found before the next request, which goes out on a fresh connection; without it they
// are read as the next request's answer (what CheckIdle is for).
func TestCheckIdleRefusesLateBytes(t *testing.T) {
	junkSent := make(chan struct{}, 2)
	addr := rawBackend(t, func(nc net.Conn, req *http.Request) bool {
		if req.URL.Path != "/late" {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
			return true
		}
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond) // the client has pooled the connection by now
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
		junkSent <- struct{}{}
		return true
	})
	put := func(tr *Transport) string { // a request with a body: checked before the write, not by the awaiter
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/next", strings.NewReader("body"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, tc := range []struct {
		check, body bool
	}{{true, false}, {true, true}, {false, false}} {
		tr := New(Config{DialTimeout: time.Second, CheckIdle: tc.check})
		if got := get(t, tr, addr, "/late"); got != "ok" {
			t.Fatalf("%+v: first answer %q", tc, got)
		}
		<-junkSent
		time.Sleep(10 * time.Millisecond) // let the bytes cross loopback
		var got string
		if tc.body {
			got = put(tr)
		} else {
			got = get(t, tr, addr, "/next")
		}
		check := tc.check
		switch {
		case check && got != "next":
			t.Fatalf("CheckIdle %+v: the next request got %q, want a fresh connection's %q", tc, got, "next")
		case !check && got != "EVIL":
			t.Fatalf("without CheckIdle the next request got %q: the test no longer puts late bytes in its way", got)
		}
		tr.Close()
	}
}

// A pooled connection the peer closed after its answer (an app's idle timeout): the next body-less
// request goes out on a fresh connection, whatever its method, its body (nil or http.NoBody) and the
// size of its head (one longer than the write buffer is partly written before the awaiter's peek).
func TestStaleConnectionResent(t *testing.T) {
	addr := rawBackend(t, func(nc net.Conn, req *http.Request) bool {
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false // closes after each answer
	})
	for _, check := range []bool{false, true} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			for _, body := range []io.Reader{nil, http.NoBody} {
				for _, cookie := range []int{10, 10 << 10} {
					tr := New(Config{DialTimeout: time.Second, CheckIdle: check})
					get(t, tr, addr, "/")
					time.Sleep(20 * time.Millisecond) // the close reaches the pooled connection
					req, _ := http.NewRequest(method, "http://"+addr+"/", body)
					req.Header.Set("Cookie", strings.Repeat("a", cookie))
					resp, err := tr.RoundTrip(req)
					if err != nil {
						t.Fatalf("CheckIdle %v, %s, body %T, %d-byte cookie: %v", check, method, body, cookie, err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != "ok" {
						t.Fatalf("CheckIdle %v, %s: body %q", check, method, b)
					}
					tr.Close()
				}
			}
		}
	}
}
