package channel

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef-herd-test-secret")

// testConfig is DefaultLocalConfig for member name in cluster "test",
// logging to t.
func testConfig(t testing.TB, name string) Config {
	c := DefaultLocalConfig()
	c.Name = name
	c.Cluster = "test"
	c.Secret = testSecret
	c.Logger = testLogger(t)
	c.kdfIter = 1000
	return c
}

// logWriter sends log lines to t.Log until the test ends.
type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startChannel creates and starts a Channel that is shut down at cleanup.
func startChannel(t testing.TB, cfg Config, setup ...func(*Channel)) *Channel {
	t.Helper()
	ch, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range setup {
		f(ch)
	}
	if err := ch.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := ch.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return ch
}

// checkGoroutines fails the test if, once everything registered after it
// has been cleaned up, more goroutines run than before it. Under the fuzz
// engine, which starts goroutines of its own, only goroutines running this
// package's code are counted.
func checkGoroutines(t testing.TB) {
	t.Helper()
	count := runtime.NumGoroutine
	if _, fuzzing := t.(*testing.F); fuzzing {
		count = ownGoroutines
	}
	base := count()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for count() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutine leak: %d running, %d before\n%s", count(), base, buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// ownGoroutines counts goroutines with a method of this package's types on
// their stack.
func ownGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "herd/channel.(*") && !strings.Contains(g, "checkGoroutines") {
			count++
		}
	}
	return count
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echo replies with from + ":" + body.
func echo(_ context.Context, from string, msg Message) ([]byte, error) {
	return append([]byte(from+":"), msg.Body...), nil
}

// rawPeer is a hand-driven authenticated client for protocol tests.
type rawPeer struct {
	nc   net.Conn
	br   *bufio.Reader
	s    *session
	sent [][]byte // every record written, as it went on the wire
}

func dialRaw(t testing.TB, addr string, cfg Config, kind byte) *rawPeer {
	t.Helper()
	keys, err := deriveClusterKeys(cfg.Secret, cfg.Cluster, cfg.kdfIter)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	s, err := keys.clientHandshake(br, nc, cfg.Name, kind)
	if err != nil {
		t.Fatalf("raw handshake: %v", err)
	}
	return &rawPeer{nc: nc, br: br, s: s}
}

// record seals a frame and returns its wire bytes without sending them.
func (p *rawPeer) record(t testing.TB, kind byte, typ uint16, id uint64, body []byte) []byte {
	t.Helper()
	rec := newRecord(kind, typ, id, body)
	if err := p.s.send.seal(rec); err != nil {
		t.Fatal(err)
	}
	p.sent = append(p.sent, rec)
	return rec
}

func (p *rawPeer) write(t testing.TB, b []byte) {
	t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

func (p *rawPeer) read() (frame, error) {
	f, _, err := readRecord(p.br, p.s.recv, MaxMaxFrame)
	return f, err
}

// expectClosed waits until the server closes c (EOF or reset on read).
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server did not close the connection")
		}
		if err != io.EOF && !strings.Contains(err.Error(), "reset") {
			t.Logf("connection ended with %v", err)
		}
		return
	}
}
