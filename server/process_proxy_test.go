package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/h1"
	"github.com/herdproject/herd/session"
	"github.com/herdproject/herd/supervisor"
)

// proxyAppEnv makes the test binary run proxyTestApp instead of the tests: it is the process app
// behind the node's proxy in TestProcessProxyStreamsAndUpgrades.
const proxyAppEnv = "HERD_SERVER_TEST_PROXY_APP"

// proxyTestApp serves, on $PORT: /t/stream (a line, then a second one once /t/release was
// called), /t/echo (the request body back, streamed), /t/refuse (413 without reading the body),
// /t/hints (103 Early Hints, then the answer), /t/upgrade (101, then an echo of every byte), and
// /t/overrun (an answer followed, a little later, by a second one nobody asked for) and /t/plain.
func proxyTestApp() {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/t/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "two\n")
	})
	mux.HandleFunc("/t/release", func(w http.ResponseWriter, r *http.Request) { close(release) })
	mux.HandleFunc("/t/echo", func(w http.ResponseWriter, r *http.Request) {
		// Full duplex: the echo goes out while the body still comes in.
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.Copy(w, r.Body)
	})
	mux.HandleFunc("/t/refuse", func(w http.ResponseWriter, r *http.Request) {
		// Answers at once, without reading the (large) body.
		w.Header().Set("Connection", "close")
		http.Error(w, "too large for me", http.StatusRequestEntityTooLarge)
	})
	mux.HandleFunc("/t/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</t/a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "hinted")
	})
	mux.HandleFunc("/t/overrun", func(w http.ResponseWriter, r *http.Request) {
		// A broken app: its answer, then, once the node has pooled the connection, bytes that look
		// like a second answer.
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		rw.Flush()
		time.Sleep(20 * time.Millisecond)
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
		rw.Flush()
		_, _ = io.Copy(io.Discard, rw) // until the node closes it
	})
	mux.HandleFunc("/t/plain", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain") })
	mux.HandleFunc("/t/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		_, _ = io.Copy(conn, rw)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// TestProcessProxyStreamsAndUpgrades checks the node's proxy to a process app (herd's own HTTP/1.1
// client) with a real supervised process: a response streams before it is complete, a request body
// streams through, and a protocol upgrade becomes a two-way byte pipe.
func TestProcessProxyStreamsAndUpgrades(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(tlogWriter{t}, nil))
	proc, err := supervisor.New(supervisor.Spec{Name: "t##1", Dir: t.TempDir(), Command: []string{os.Args[0]},
		Env: map[string]string{proxyAppEnv: "1"}, StartTimeout: 20 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer proc.Stop(context.Background())
	sm, err := session.NewManager(session.Options{Route: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	tr := newAppTransport()
	defer tr.Close()
	// The front is the node's own HTTP server, as in a node.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := sm.Handler("t##1", "/t", newProcessApp("t##1", proc, tr, nil, log))
	valved := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid-1") // as the request-id valve does before the app
		app.ServeHTTP(w, r)
	})
	frontSrv := &h1.Server{Handler: valved,
		ReadHeaderTimeout: 10 * time.Second, SniffContentType: true}
	served := make(chan struct{})
	go func() { defer close(served); _ = frontSrv.Serve(ln) }()
	defer func() { _ = frontSrv.Close(); <-served }()
	front := struct{ URL string }{"http://" + ln.Addr().String()}
	c := &http.Client{Timeout: time.Minute} // a stalled proxy fails the test instead of hanging it

	// Streaming response: the first line arrives while the app still holds the rest back.
	resp, err := c.Get(front.URL + "/t/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() { l, _ := lines.ReadString('\n'); first <- l }()
	select {
	case l := <-first:
		if l != "one\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the first line of a streamed response did not come through before the response ended")
	}
	r2, err := c.Get(front.URL + "/t/release")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if rest, err := io.ReadAll(lines); err != nil || string(rest) != "two\n" {
		t.Fatalf("rest of the stream %q, %v", rest, err)
	}

	// A request body of unknown length streams through (chunked both ways).
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 100; i++ {
			fmt.Fprintf(pw, "line %d\n", i)
		}
		pw.Close()
	}()
	resp3, err := c.Post(front.URL+"/t/echo", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp3.Body)
	resp3.Body.Close()
	if resp3.StatusCode != 200 || strings.Count(string(body), "\n") != 100 || !strings.HasSuffix(string(body), "line 99\n") {
		t.Fatalf("echo: %d, %d bytes", resp3.StatusCode, len(body))
	}

	// A body far larger than the socket buffers, echoed while it is sent: the proxy must read the
	// response while it writes the request.
	const big = 32 << 20
	resp4, err := c.Post(front.URL+"/t/echo", "application/octet-stream", io.LimitReader(zeros{}, big))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp4.Body)
	resp4.Body.Close()
	if err != nil || n != big {
		t.Fatalf("full-duplex echo of %d bytes: got %d, %v", big, n, err)
	}

	// An app that refuses a large upload before reading it: the client gets the app's answer.
	resp5, err := c.Post(front.URL+"/t/refuse", "application/octet-stream", io.LimitReader(zeros{}, big))
	if err != nil {
		t.Fatal(err)
	}
	body5, _ := io.ReadAll(resp5.Body)
	resp5.Body.Close()
	if resp5.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body5), "too large for me") {
		t.Fatalf("early answer: %d %q", resp5.StatusCode, body5)
	}

	// An interim answer (103 Early Hints) reaches the client ahead of the final one.
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req6, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, front.URL+"/t/hints", nil)
	resp6, err := c.Do(req6)
	if err != nil {
		t.Fatal(err)
	}
	body6, _ := io.ReadAll(resp6.Body)
	resp6.Body.Close()
	if len(hints) != 1 || hints[0] != "103 </t/a.css>; rel=preload" || string(body6) != "hinted" || resp6.Header.Get("Link") != "" {
		t.Fatalf("early hints: interim %q, final %q with Link %q", hints, body6, resp6.Header.Get("Link"))
	}
	if got := resp6.Header.Get("X-Request-Id"); got != "rid-1" {
		t.Fatalf("a field set before the app answered was lost with the interim answer: X-Request-Id %q", got)
	}

	// An app that writes past its answer once the connection is idle does not answer the next
	// request (somebody else's) with those bytes: the pooled connection is checked before reuse.
	for _, path := range []string{"/t/overrun", "/t/plain"} {
		resp, err := c.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := path[len("/t/"):]; path == "/t/overrun" && string(body) != "ok" || path == "/t/plain" && string(body) != want {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
		time.Sleep(60 * time.Millisecond) // the app's late bytes reach the node's pooled connection
	}

	// Upgrade: after 101 the connection carries bytes both ways.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(conn, "GET /t/upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	up, err := http.ReadResponse(br, nil)
	if err != nil || up.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", up, err)
	}
	for _, msg := range []string{"ping\n", "second message\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo over the upgraded connection: %q, %v", got, err)
		}
	}
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
