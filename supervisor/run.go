package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outputGrace is how long a run's pipe readers may keep reading after its process group was killed
// (something that escaped the group may still hold the pipe).
const outputGrace = time.Second

// defaultPath is the child's PATH when the node has none.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// run is one incarnation of the app's process.
type run struct {
	pid  int
	port int
	addr string
	// done is closed once the process has been reaped; ps and waitErr are valid after that.
	done    chan struct{}
	ps      *os.ProcessState
	waitErr error
	// out and errp are the read ends of the stdout and stderr pipes, owned by their readers.
	out, errp *os.File
	readers   sync.WaitGroup
	tail      *ring
}

// launch starts the app on port. The fork happens on a goroutine locked to its OS thread which then
// waits for the child: the parent-death signal fires when the forking thread exits, so that thread must
// live exactly as long as the child. The goroutine never unlocks, so the thread exits with it, after the
// child is gone, and no other goroutine can ever run on it (and end it) meanwhile.
func (p *Process) launch(port int) (*run, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	addr := net.JoinHostPort(p.spec.Host, strconv.Itoa(port))
	r := &run{port: port, addr: addr, done: make(chan struct{}), out: outR, errp: errR, tail: newRing(tailLines)}
	cmd := &exec.Cmd{
		Path:        p.exe,
		Args:        p.spec.Command,
		Dir:         p.spec.Dir,
		Env:         p.environ(port),
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: sysProcAttr(),
	}
	started := make(chan error, 1)
	p.runs.Add(1)
	go func() {
		defer p.runs.Done()
		runtime.LockOSThread() // never unlocked: see above
		err := cmd.Start()
		outW.Close()
		errW.Close()
		if err != nil {
			started <- err
			return
		}
		r.pid = cmd.Process.Pid
		started <- nil
		r.waitErr = cmd.Wait()
		r.ps = cmd.ProcessState
		close(r.done)
	}()
	if err := <-started; err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("launch %s: %w", p.exe, err)
	}
	r.readers.Add(2)
	p.runs.Add(2)
	go p.readStream(r, outR, "stdout")
	go p.readStream(r, errR, "stderr")
	return r, nil
}

// finishOutput lets the run's readers drain for at most outputGrace more; call it once the process
// group is gone.
func (r *run) finishOutput() {
	deadline := time.Now().Add(outputGrace)
	_ = r.out.SetReadDeadline(deadline) // fails only when the reader already closed it
	_ = r.errp.SetReadDeadline(deadline)
}

// exitInfo describes the ended run; call after done is closed.
func (r *run) exitInfo(at time.Time) ExitInfo {
	info := ExitInfo{PID: r.pid, Code: -1, At: at}
	if r.ps == nil {
		if r.waitErr != nil {
			info.Error = "wait: " + r.waitErr.Error()
		}
		return info
	}
	info.Code, info.Signal = exitDetails(r.ps)
	return info
}

// environ builds the child's environment: the minimal base, Spec.Env, then PORT.
func (p *Process) environ(port int) []string {
	env := map[string]string{
		"PATH":   p.basePath,
		"HOME":   p.spec.Dir,
		"LANG":   "C.UTF-8",
		"TMPDIR": p.spec.TempDir,
	}
	for k, v := range p.spec.Env {
		env[k] = v
	}
	env["PORT"] = strconv.Itoa(port)
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// childPath is the PATH the child sees.
func (p *Process) childPath() string {
	if v, ok := p.spec.Env["PATH"]; ok {
		return v
	}
	return p.basePath
}

// resolveCommand finds the executable for argv0: a path (relative to dir unless absolute) when it has
// a slash, else the first match in pathList.
func resolveCommand(dir, argv0, pathList string) (string, error) {
	if strings.Contains(argv0, "/") {
		path := argv0
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		if err := checkExecutable(path); err != nil {
			return "", fmt.Errorf("command %q: %w", argv0, err)
		}
		return path, nil
	}
	for _, d := range filepath.SplitList(pathList) {
		if d == "" || !filepath.IsAbs(d) {
			continue // relative PATH entries would depend on the working directory
		}
		path := filepath.Join(d, argv0)
		if checkExecutable(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("command %q: not found in PATH %q", argv0, pathList)
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("is a directory")
	case fi.Mode().Perm()&0o111 == 0:
		return errors.New("not executable")
	}
	return nil
}

// pickPort returns prefer if it can be bound on host, else a free port chosen by the kernel.
func pickPort(host string, prefer int) (int, error) {
	if prefer > 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(prefer))); err == nil {
			l.Close()
			return prefer, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
