// Package testutil holds test helpers shared by the membership providers:
// a slog logger that writes to t.Log, polling with deadlines, an event
// recorder, free ports, and a TestMain that moves the test binary into a
// private network namespace where loopback multicast works.
package testutil

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
)

// Environment variables of the re-exec helpers.
const (
	NetnsEnv = "HERD_MEMBERSHIP_TEST_NETNS" // "1" inside the private namespace
	ChildEnv = "HERD_MEMBERSHIP_TEST_CHILD" // child-process mode name
)

// Logger returns a logger writing to t.Log until the test ends (later
// records are dropped, so a straggling goroutine cannot fail the test run).
func Logger(t testing.TB) *slog.Logger {
	w := &tbWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Eventually polls cond every 10ms until it returns nil or timeout passes,
// then fails the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Recorder collects every event of one subscription.
type Recorder struct {
	mu     sync.Mutex
	events []membership.Event
	times  []time.Time // arrival time of each event
	done   chan struct{}
}

// Record drains sub into a new Recorder until sub's channel closes.
func Record(t testing.TB, sub *membership.Subscription) *Recorder {
	r := &Recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range sub.C() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.times = append(r.times, time.Now())
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-r.done })
	return r
}

// Events returns a copy of the events so far.
func (r *Recorder) Events() []membership.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]membership.Event(nil), r.events...)
}

// Find returns the first event of type typ for name (and incarnation, if
// inc != 0) and whether there is one.
func (r *Recorder) Find(typ membership.EventType, name string, inc uint64) (membership.Event, bool) {
	for _, ev := range r.Events() {
		if ev.Type == typ && ev.Member.Name == name && (inc == 0 || ev.Member.Incarnation == inc) {
			return ev, true
		}
	}
	return membership.Event{}, false
}

// FindAt is Find that also returns when the event arrived.
func (r *Recorder) FindAt(typ membership.EventType, name string, inc uint64) (membership.Event, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range r.events {
		if ev.Type == typ && ev.Member.Name == name && (inc == 0 || ev.Member.Incarnation == inc) {
			return ev, r.times[i], true
		}
	}
	return membership.Event{}, time.Time{}, false
}

// Count returns how many events of type typ concern name.
func (r *Recorder) Count(typ membership.EventType, name string) int {
	n := 0
	for _, ev := range r.Events() {
		if ev.Type == typ && ev.Member.Name == name {
			n++
		}
	}
	return n
}

// Names returns the names in ms, in order.
func Names(ms []membership.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// Find returns the member called name in ms.
func Find(ms []membership.Member, name string) (membership.Member, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return membership.Member{}, false
}

// LoMulticast reports whether the loopback interface can carry multicast.
func LoMulticast() error {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("no lo interface: %w", err)
	}
	if ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("lo flags %v lack up|multicast (run as root to re-exec in a private network namespace, or inside `unshare -n` with lo multicast)", ifi.Flags)
	}
	return nil
}

// Main is a TestMain body. In child mode (ChildEnv set) it runs child and
// exits with its code. Otherwise, if needNetns and lo cannot carry multicast
// and the process is root, it re-runs the test binary in a new network
// namespace (loopback only) with lo up, multicast on and a 224.0.0.0/4
// route, and exits with that run's code. Otherwise it runs the tests here;
// multicast tests then skip with LoMulticast's message.
func Main(m *testing.M, needNetns bool, child func(mode string) int) {
	if mode := os.Getenv(ChildEnv); mode != "" {
		os.Exit(child(mode))
	}
	if os.Getenv(NetnsEnv) == "1" {
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"link", "set", "lo", "multicast", "on"},
			{"route", "add", "224.0.0.0/4", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "netns setup: ip %v: %v: %s\n", args, err, out)
			}
		}
	} else if needNetns && LoMulticast() != nil && os.Geteuid() == 0 && !fuzzing() {
		if code, ok := reexecInNetns(); ok {
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}

func fuzzing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzz") {
			return true
		}
	}
	return false
}

// Child is a member running in a helper child process (see Main).
type Child struct {
	Cmd  *exec.Cmd
	Line string // the first line the child printed (its readiness report)
}

// StartChild runs the test binary in child mode with extra environment and
// waits (up to 10s) for its first stdout line. The child is killed at test
// end if still running.
func StartChild(t testing.TB, mode string, env ...string) *Child {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), ChildEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		var sb strings.Builder
		b := make([]byte, 1)
		for {
			if _, err := out.Read(b); err != nil || b[0] == '\n' {
				break
			}
			sb.WriteByte(b[0])
		}
		line <- sb.String()
		buf := make([]byte, 512)
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	select {
	case l := <-line:
		return &Child{Cmd: cmd, Line: l}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not report ready within 10s")
	}
	return nil
}

// WaitSignal blocks until the process gets SIGTERM or SIGINT (child mode).
func WaitSignal() {
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	<-ch
}

// Stats accumulates durations for benchmark reports.
type Stats struct{ ds []time.Duration }

// Add records one duration.
func (s *Stats) Add(d time.Duration) { s.ds = append(s.ds, d) }

// Report adds mean and max metrics in milliseconds named "<unit>-ms" and
// "<unit>-max-ms", and logs every sample.
func (s *Stats) Report(b *testing.B, unit string) {
	if len(s.ds) == 0 {
		return
	}
	var sum, worst time.Duration
	for _, d := range s.ds {
		sum += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(s.ds)), unit+"-ms")
	b.ReportMetric(float64(worst.Milliseconds()), unit+"-max-ms")
	b.Logf("%s: %d samples %v", unit, len(s.ds), s.ds)
}

// WaitAll polls (every 2ms, up to timeout) until every recorder has an
// event of typ for name and incarnation inc, and returns the latest arrival
// time among them.
func WaitAll(tb testing.TB, recs []*Recorder, typ membership.EventType, name string, inc uint64, timeout time.Duration) time.Time {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var latest time.Time
		all := true
		for _, r := range recs {
			_, at, ok := r.FindAt(typ, name, inc)
			if !ok {
				all = false
				break
			}
			if at.After(latest) {
				latest = at
			}
		}
		if all {
			return latest
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not every peer saw %s of %s within %s", typ, name, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Burn keeps 2*GOMAXPROCS goroutines busy for d. The result is meaningless;
// it keeps the busy loops from being optimized away.
func Burn(d time.Duration) int64 {
	var wg sync.WaitGroup
	var sink atomic.Int64
	stop := time.Now().Add(d)
	for i := 0; i < 2*runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for time.Now().Before(stop) {
				for j := 0; j < 1e5; j++ {
					x += j
				}
			}
			sink.Add(int64(x))
		}()
	}
	wg.Wait()
	return sink.Load()
}

// WaitSeen polls until r has an event of typ for every name and returns the
// latest arrival time among them.
func WaitSeen(tb testing.TB, r *Recorder, typ membership.EventType, names []string, timeout time.Duration) time.Time {
	tb.Helper()
	var latest time.Time
	for _, n := range names {
		if at := WaitAll(tb, []*Recorder{r}, typ, n, 0, timeout); at.After(latest) {
			latest = at
		}
	}
	return latest
}
