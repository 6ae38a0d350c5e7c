package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		if !runHelperMode(mode) {
			fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperModeEnv, mode)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testExe is the test binary, which runs the helper modes.
func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// logRecord is one captured slog record with its attributes rendered as strings.
type logRecord struct {
	msg   string
	attrs map[string]string
}

// recorder captures log records. With gate set, "app output" records block until gate is closed.
type recorder struct {
	mu   sync.Mutex
	recs []logRecord
	gate chan struct{}
}

type recHandler struct {
	r     *recorder
	attrs []slog.Attr
}

func (h recHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recHandler) Handle(_ context.Context, rec slog.Record) error {
	if h.r.gate != nil && rec.Message == "app output" {
		<-h.r.gate
	}
	lr := logRecord{msg: rec.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		lr.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	h.r.mu.Lock()
	h.r.recs = append(h.r.recs, lr)
	h.r.mu.Unlock()
	return nil
}

func (h recHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recHandler{r: h.r, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h recHandler) WithGroup(string) slog.Handler { return h }

func (r *recorder) logger() *slog.Logger { return slog.New(recHandler{r: r}) }

func (r *recorder) find(pred func(logRecord) bool) (logRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, lr := range r.recs {
		if pred(lr) {
			return lr, true
		}
	}
	return logRecord{}, false
}

func (r *recorder) waitFor(t *testing.T, what string, pred func(logRecord) bool) logRecord {
	t.Helper()
	var found logRecord
	waitUntil(t, 20*time.Second, what, func() bool {
		var ok bool
		found, ok = r.find(pred)
		return ok
	})
	return found
}

func (r *recorder) dump(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, lr := range r.recs {
		t.Logf("log: %s %v", lr.msg, lr.attrs)
	}
}

// outputLine matches an "app output" record whose line contains s.
func outputLineWith(stream, s string) func(logRecord) bool {
	return func(lr logRecord) bool {
		return lr.msg == "app output" && lr.attrs["stream"] == stream && strings.Contains(lr.attrs["line"], s)
	}
}

// waitUntil polls cond every 10ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processGone reports whether pid no longer exists (or is a zombie nobody reaped yet).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// killIfOurs SIGKILLs pid if it is one of this test's helper processes (its environment says so).
func killIfOurs(pid int) {
	if pid <= 0 {
		return
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err == nil && bytes.Contains(env, []byte(helperModeEnv+"=")) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// baseSpec returns a spec running the helper app in a temp dir, logging to rec.
func baseSpec(t *testing.T, rec *recorder) Spec {
	return Spec{
		Name:         "helper##1",
		Dir:          t.TempDir(),
		Command:      []string{testExe(t)},
		Env:          map[string]string{helperModeEnv: "app"},
		HealthPath:   "/healthz",
		StartTimeout: 20 * time.Second,
		StopTimeout:  5 * time.Second,
		Logger:       rec.logger(),
	}
}

// newProc builds a Process and registers its cleanup: Stop, then SIGKILL of any pid it ever reported.
func newProc(t *testing.T, spec Spec, rec *recorder) (*Process, func(int)) {
	t.Helper()
	p, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var pids []int
	track := func(pid int) {
		mu.Lock()
		pids = append(pids, pid)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range pids {
			killIfOurs(pid)
		}
		if t.Failed() {
			rec.dump(t)
		}
	})
	return p, track
}

// startProc builds and starts a Process, failing the test if Start fails.
func startProc(t *testing.T, spec Spec, rec *recorder) (*Process, func(int)) {
	t.Helper()
	p, track := newProc(t, spec, rec)
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	track(p.PID())
	return p, track
}

var testClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGet(addr, path string) (string, error) {
	resp, err := testClient.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), err
}

// stepClock is a Clock whose time moves only when the test says; After requests are handed to the test.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	reqs chan afterReq
}

type afterReq struct {
	d  time.Duration
	ch chan time.Time
}

func newStepClock() *stepClock {
	return &stepClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), reqs: make(chan afterReq, 64)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.reqs <- afterReq{d: d, ch: ch}
	return ch
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// next returns the supervisor's next After request.
func (c *stepClock) next(t *testing.T) afterReq {
	t.Helper()
	select {
	case r := <-c.reqs:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no backoff wait requested")
		return afterReq{}
	}
}

// fire lets the requested delay pass.
func (c *stepClock) fire(r afterReq) {
	c.advance(r.d)
	r.ch <- c.Now()
}
