package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestStartServeStop(t *testing.T) {
	t.Setenv("HERD_SECRET", "do-not-leak")
	rec := &recorder{}
	spec := baseSpec(t, rec)
	if err := os.Mkdir(filepath.Join(spec.Dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testExe(t), filepath.Join(spec.Dir, "bin", "helper")); err != nil {
		t.Fatal(err)
	}
	spec.Command = []string{"bin/helper"} // relative to Dir
	spec.Env["GREETING"] = "hi"
	spec.Env["HERD_NODE"] = "node1"
	p, _ := startProc(t, spec, rec)

	pid := p.PID()
	st := p.Status()
	if !p.Ready() || st.State != StateRunning || pid <= 0 || st.PID != pid {
		t.Fatalf("after start: ready=%v status=%+v", p.Ready(), st)
	}
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Port)); p.Addr() != want || st.Addr != want {
		t.Fatalf("Addr() = %q, Status.Addr = %q, want %q", p.Addr(), st.Addr, want)
	}
	body, err := httpGet(p.Addr(), "/")
	if err != nil || !strings.Contains(body, fmt.Sprintf("pid %d greeting=hi", pid)) {
		t.Fatalf("GET / = %q, %v", body, err)
	}
	env, err := httpGet(p.Addr(), "/env")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PORT=" + strconv.Itoa(st.Port), "HOME=" + spec.Dir, "HERD_NODE=node1",
		"TMPDIR=" + filepath.Join(spec.Dir, "tmp"), "LANG=C.UTF-8", "PATH="} {
		if !strings.Contains(env, want) {
			t.Errorf("app environment lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, "HERD_SECRET") {
		t.Errorf("the node's HERD_SECRET leaked into the app environment:\n%s", env)
	}
	if n := len(strings.Split(strings.TrimSpace(env), "\n")); n > 8 {
		t.Errorf("app environment has %d variables, want a minimal one:\n%s", n, env)
	}

	for _, stream := range []string{"stdout", "stderr"} {
		want := map[string]string{"stdout": "listening on", "stderr": "stderr hello"}[stream]
		lr := rec.waitFor(t, stream+" line logged", outputLineWith(stream, want))
		if lr.attrs["app"] != "helper##1" || lr.attrs["pid"] != strconv.Itoa(pid) {
			t.Errorf("%s record attrs = %v, want app=helper##1 pid=%d", stream, lr.attrs, pid)
		}
	}

	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	st = p.Status()
	if st.State != StateStopped || st.PID != 0 || p.Ready() {
		t.Fatalf("after stop: %+v", st)
	}
	if st.LastExit == nil || st.LastExit.Signal != "terminated" || st.LastExit.PID != pid {
		t.Fatalf("LastExit = %+v, want pid %d terminated by SIGTERM", st.LastExit, pid)
	}
	if !processGone(pid) {
		t.Fatalf("pid %d still alive after Stop", pid)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := p.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("Start after Stop = %v, want ErrAlreadyStarted", err)
	}
}

func TestRestartAfterKill(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	spec := baseSpec(t, rec)
	spec.HealthPath = "" // TCP readiness
	spec.Backoff = Backoff{Initial: 50 * time.Millisecond}
	p, track := startProc(t, spec, rec)
	pid1, port1 := p.PID(), p.Status().Port

	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "a new healthy run", func() bool {
		pid := p.PID()
		return pid != 0 && pid != pid1 && p.Ready()
	})
	pid2 := p.PID()
	track(pid2)
	if got := p.Restarts(); got != 1 {
		t.Errorf("Restarts() = %d, want 1", got)
	}
	st := p.Status()
	if st.LastExit == nil || st.LastExit.PID != pid1 || st.LastExit.Signal != "killed" {
		t.Errorf("LastExit = %+v, want pid %d killed", st.LastExit, pid1)
	}
	if st.Port != port1 {
		t.Errorf("port after restart = %d, want the old port %d (it was free)", st.Port, port1)
	}
	body, err := httpGet(p.Addr(), "/")
	if err != nil || !strings.Contains(body, fmt.Sprintf("pid %d ", pid2)) {
		t.Fatalf("GET / after restart = %q, %v (want pid %d)", body, err, pid2)
	}
	if !processGone(pid1) {
		t.Errorf("old pid %d still alive", pid1)
	}
}

func TestCrashLoopBackoff(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	clk := newStepClock()
	spec := baseSpec(t, rec)
	spec.Clock = clk
	spec.Backoff = Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Factor: 2,
		ResetAfter: time.Minute}
	p, track := startProc(t, spec, rec)

	crash := func() (pid, port int) {
		t.Helper()
		pid, port = p.PID(), p.Status().Port
		_, _ = httpGet(p.Addr(), "/crash") // the app exits mid-request
		return pid, port
	}
	restarted := func(old int) {
		t.Helper()
		waitUntil(t, 20*time.Second, "restart", func() bool { return p.Ready() && p.PID() != old })
		track(p.PID())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		400 * time.Millisecond}
	for i, w := range want {
		pid, port := crash()
		req := clk.next(t)
		if req.d != w {
			t.Errorf("crash %d: backoff %s, want %s", i+1, req.d, w)
		}
		st := p.Status()
		if st.State != StateBackoff || st.Backoff != w || st.NextRestart.Sub(st.Since) != w {
			t.Errorf("crash %d: status %+v, want backoff %s", i+1, st, w)
		}
		if st.LastExit == nil || st.LastExit.Code != 3 || st.LastExit.PID != pid {
			t.Errorf("crash %d: LastExit %+v, want pid %d code 3", i+1, st.LastExit, pid)
		}
		var blocker net.Listener
		if i == 1 { // the old port is taken: the restart must pick another one
			var err error
			blocker, err = net.Listen("tcp", p.Addr())
			if err != nil {
				t.Fatalf("occupy old port: %v", err)
			}
		}
		clk.fire(req)
		restarted(pid)
		if got := p.Status().Port; (got == port) != (blocker == nil) {
			t.Errorf("crash %d: port %d -> %d (old port occupied: %v)", i+1, port, got, blocker != nil)
		}
		if blocker != nil {
			blocker.Close()
		}
		if _, err := httpGet(p.Addr(), "/healthz"); err != nil {
			t.Errorf("crash %d: restarted app not serving at %s: %v", i+1, p.Addr(), err)
		}
	}
	if got := p.Restarts(); got != len(want) {
		t.Errorf("Restarts() = %d, want %d", got, len(want))
	}

	// Healthy for ResetAfter: the next crash starts from Initial again.
	clk.advance(time.Minute)
	pid, _ := crash()
	if req := clk.next(t); req.d != 100*time.Millisecond {
		t.Errorf("backoff after a long healthy run = %s, want reset to 100ms", req.d)
	} else {
		clk.fire(req)
		restarted(pid)
	}
}

func TestMaxRestartsFails(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	spec := baseSpec(t, rec)
	spec.Backoff = Backoff{Initial: 10 * time.Millisecond}
	spec.MaxRestarts = 2
	p, track := startProc(t, spec, rec)
	for i := range 2 {
		pid := p.PID()
		_, _ = httpGet(p.Addr(), "/crash")
		waitUntil(t, 20*time.Second, fmt.Sprintf("restart %d", i+1), func() bool {
			return p.Ready() && p.PID() != pid
		})
		track(p.PID())
	}
	pid := p.PID()
	_, _ = httpGet(p.Addr(), "/crash")
	waitUntil(t, 20*time.Second, "state failed", func() bool { return p.State() == StateFailed })
	if got := p.Restarts(); got != 2 {
		t.Errorf("Restarts() = %d, want 2", got)
	}
	if !processGone(pid) || p.PID() != 0 {
		t.Errorf("failed process still has a live run (pid %d, PID() %d)", pid, p.PID())
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.State() != StateFailed {
		t.Errorf("state after Stop = %s, want failed", p.State())
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		modify  func(*Spec)
		wantErr error
		want    []string // substrings of the error message
		code    int      // expected exit code, -2 when the app never ran
	}{
		{"exits during startup", func(s *Spec) { s.Env["HELPER_EXIT"] = "3" }, ErrExited,
			[]string{"boom at startup", "exit code 3", "helper##1"}, 3},
		{"shell from PATH exits", func(s *Spec) { s.Command = []string{"sh", "-c", "echo shell-boom >&2; exit 5"} },
			ErrExited, []string{"stderr: shell-boom", "exit code 5"}, 5},
		{"never healthy", func(s *Spec) {
			s.Env["HELPER_UNHEALTHY"] = "1"
			s.StartTimeout = time.Second
		}, ErrStartTimeout, []string{"not ready: boom", "503"}, -1},
		{"missing command", func(s *Spec) { s.Command = []string{"bin/nope"} }, nil,
			[]string{`"bin/nope"`}, -2},
		{"missing dir", func(s *Spec) { s.Dir = filepath.Join(s.Dir, "absent") }, nil,
			[]string{"app dir"}, -2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			spec := baseSpec(t, rec)
			tc.modify(&spec)
			p, _ := newProc(t, spec, rec)
			err := p.Start(context.Background())
			var serr *StartError
			if !errors.As(err, &serr) {
				t.Fatalf("Start = %v, want a *StartError", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Start = %v, want %v", err, tc.wantErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if tc.code == -2 {
				if serr.Exit != nil {
					t.Errorf("Exit = %+v for an app that never ran", serr.Exit)
				}
			} else if serr.Exit == nil || serr.Exit.Code != tc.code || !processGone(serr.Exit.PID) {
				t.Errorf("Exit = %+v, want code %d and the process gone", serr.Exit, tc.code)
			}
			if p.State() != StateFailed || p.PID() != 0 {
				t.Errorf("after failed start: state %s pid %d", p.State(), p.PID())
			}
		})
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	spec := baseSpec(t, rec)
	spec.Env["HELPER_IGNORE_TERM"] = "1"
	spec.StopTimeout = 300 * time.Millisecond
	p, _ := startProc(t, spec, rec)
	pid := p.PID()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.LastExit == nil || st.LastExit.Signal != "killed" {
		t.Fatalf("LastExit = %+v, want killed by SIGKILL", st.LastExit)
	}
	if !processGone(pid) {
		t.Fatalf("pid %d alive after Stop", pid)
	}
}

func TestStopContextCutsGraceShort(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	spec := baseSpec(t, rec)
	spec.Env["HELPER_IGNORE_TERM"] = "1"
	spec.StopTimeout = time.Hour
	p, _ := startProc(t, spec, rec)
	pid := p.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want DeadlineExceeded", err)
	}
	if !processGone(pid) || p.State() != StateStopped {
		t.Fatalf("after Stop: pid %d gone=%v state=%s", pid, processGone(pid), p.State())
	}
}

func TestStopKillsGrandchild(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	spec := baseSpec(t, rec)
	spec.Env["HELPER_GRANDCHILD"] = "1"
	p, track := startProc(t, spec, rec)
	lr := rec.waitFor(t, "grandchild pid logged", outputLineWith("stdout", "grandchild pid="))
	gpid, err := strconv.Atoi(strings.TrimPrefix(lr.attrs["line"], "grandchild pid="))
	if err != nil {
		t.Fatal(err)
	}
	track(gpid)
	if processGone(gpid) {
		t.Fatalf("grandchild %d not running before Stop", gpid)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "grandchild gone", func() bool { return processGone(gpid) })
}

// TestNoOrphanWhenNodeKilled SIGKILLs a separate "node" process that supervises an app: the app must die
// with it (parent-death signal).
func TestNoOrphanWhenNodeKilled(t *testing.T) {
	t.Parallel()
	node := exec.Command(testExe(t))
	node.Env = []string{helperModeEnv + "=mininode", "HELPER_DIR=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	var stderr strings.Builder
	node.Stderr = &stderr
	out, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = node.Process.Kill()
		_ = node.Wait()
	})
	lines := make(chan string, 1)
	go func() { // ends when the node dies (EOF)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("mini node printed nothing; stderr:\n%s", stderr.String())
	}
	appPID, err := strconv.Atoi(strings.TrimPrefix(line, "APP_PID="))
	if err != nil || appPID <= 0 {
		t.Fatalf("mini node said %q", line)
	}
	t.Cleanup(func() { killIfOurs(appPID) })
	if processGone(appPID) {
		t.Fatalf("app %d not running under the mini node", appPID)
	}
	if err := node.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = node.Wait()
	waitUntil(t, 10*time.Second, fmt.Sprintf("app %d to die with its node", appPID), func() bool {
		return processGone(appPID)
	})
}

func TestSlowLoggerDoesNotBlockApp(t *testing.T) {
	t.Parallel()
	rec := &recorder{gate: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(rec.gate)
		}
	}
	spec := baseSpec(t, rec)
	spec.Env["HELPER_LONGLINE"] = "100000"
	spec.Env["HELPER_FLOOD"] = "5000" // ~450 KB: far beyond a pipe buffer
	spec.MaxLineBytes = 1024
	p, _ := newProc(t, spec, rec)
	t.Cleanup(release) // runs before the Stop registered by newProc
	started := make(chan error, 1)
	go func() { started <- p.Start(context.Background()) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start with a stuck logger: %v", err)
		}
	case <-time.After(30 * time.Second):
		release() // let a blocked Start finish its cleanup
		t.Fatalf("Start blocked behind a stuck logger: %v", <-started)
	}
	waitUntil(t, 20*time.Second, "the last flood line in the tail", func() bool {
		return strings.Contains(strings.Join(p.Status().Output, "\n"), "flood line 4999 ")
	})
	release()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.find(func(lr logRecord) bool { return lr.msg == "app output dropped" && lr.attrs["lines"] != "0" }); !ok {
		t.Error("no 'app output dropped' record although the logger was stuck")
	}
	long, ok := rec.find(outputLineWith("stdout", "xxxxxxxx"))
	if !ok {
		t.Fatal("long line not logged")
	}
	if l := long.attrs["line"]; len(l) != 1024+len(truncMark) || !strings.HasSuffix(l, truncMark) {
		t.Errorf("long line logged with %d bytes, want 1024 + %q", len(l), truncMark)
	}
	if _, ok := rec.find(outputLineWith("stdout", "after-long-line")); !ok {
		t.Error("the line after the long one was lost")
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	t.Run("stop before start", func(t *testing.T) {
		rec := &recorder{}
		p, _ := newProc(t, baseSpec(t, rec), rec)
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := p.Start(context.Background()); !errors.Is(err, ErrStopped) {
			t.Fatalf("Start after Stop = %v, want ErrStopped", err)
		}
		if p.State() != StateStopped || p.Addr() != "" {
			t.Fatalf("state %s addr %q", p.State(), p.Addr())
		}
	})
	t.Run("start twice", func(t *testing.T) {
		rec := &recorder{}
		p, _ := startProc(t, baseSpec(t, rec), rec)
		if err := p.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
			t.Fatalf("second Start = %v, want ErrAlreadyStarted", err)
		}
	})
	t.Run("stop during start", func(t *testing.T) {
		rec := &recorder{}
		spec := baseSpec(t, rec)
		spec.Env["HELPER_UNHEALTHY"] = "1"
		spec.StartTimeout = time.Minute
		p, track := newProc(t, spec, rec)
		started := make(chan error, 1)
		go func() { started <- p.Start(context.Background()) }()
		waitUntil(t, 20*time.Second, "launch", func() bool { return p.PID() != 0 })
		pid := p.PID()
		track(pid)
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-started; !errors.Is(err, ErrStopped) {
			t.Fatalf("interrupted Start = %v, want ErrStopped", err)
		}
		if p.State() != StateStopped || !processGone(pid) {
			t.Fatalf("state %s, pid %d gone=%v", p.State(), pid, processGone(pid))
		}
	})
	t.Run("context ends supervision", func(t *testing.T) {
		rec := &recorder{}
		p, track := newProc(t, baseSpec(t, rec), rec)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		pid := p.PID()
		track(pid)
		cancel()
		waitUntil(t, 20*time.Second, "stopped after cancel", func() bool {
			return p.State() == StateStopped && processGone(pid)
		})
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestThreadChurnDoesNotKillApp kills many OS threads of this process (a goroutine that exits while
// locked to its thread takes the thread with it). Had the app been forked from one of them, the
// parent-death signal would kill it; the supervisor forks from a thread it keeps locked.
func TestThreadChurnDoesNotKillApp(t *testing.T) {
	rec := &recorder{}
	p, _ := startProc(t, baseSpec(t, rec), rec)
	pid := p.PID()
	for range 200 {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
				runtime.Gosched()
			}()
		}
		wg.Wait()
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := httpGet(p.Addr(), "/healthz"); err != nil || p.PID() != pid || p.Restarts() != 0 {
			t.Fatalf("app disturbed by thread exits: pid %d -> %d, restarts %d, GET: %v (last exit %+v)",
				pid, p.PID(), p.Restarts(), err, p.Status().LastExit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
