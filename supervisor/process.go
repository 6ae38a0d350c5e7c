package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Process supervises one app: see the package documentation. Its methods are safe for concurrent use.
type Process struct {
	spec     Spec
	log      *slog.Logger // spec.Logger with app=Name
	clock    Clock
	basePath string       // the child's default PATH
	httpc    *http.Client // health probes
	exe      string       // resolved Command[0]; written by Start before the first launch

	addr atomic.Pointer[string]

	mu           sync.Mutex
	started      bool
	state        State
	since        time.Time
	pid, port    int
	restarts     int
	lastExit     *ExitInfo
	delay        time.Duration // last backoff delay; 0 means the next one is Backoff.Initial
	nextRestart  time.Time
	runningSince time.Time
	restartTimes []time.Time // restarts within RestartWindow, for MaxRestarts
	last         *run        // the current or last run

	stopCh   chan struct{} // closed by Stop
	stopOnce sync.Once
	killNow  chan struct{} // closed when Stop's context ends before a graceful stop did
	killOnce sync.Once
	done     chan struct{} // closed when Start's failure cleanup or the supervision goroutine finished

	runs     sync.WaitGroup // every run's waiter and pipe readers
	lines    chan outputLine
	dropped  atomic.Int64
	sinkDone chan struct{}
}

// New validates spec, fills in its defaults and returns a stopped Process. It has no side effects: no
// file is touched and no process started.
func New(spec Spec) (*Process, error) {
	s := spec.withDefaults()
	if err := s.validate(); err != nil {
		return nil, err
	}
	for field, f := range map[string]*string{"Dir": &s.Dir, "TempDir": &s.TempDir} {
		abs, err := filepath.Abs(*f)
		if err != nil {
			return nil, specErr(field, "%v", err)
		}
		*f = abs
	}
	basePath := os.Getenv("PATH")
	if basePath == "" {
		basePath = defaultPath
	}
	p := &Process{
		spec:     s,
		log:      s.Logger.With("app", s.Name),
		clock:    s.Clock,
		basePath: basePath,
		httpc:    newProbeClient(),
		stopCh:   make(chan struct{}),
		killNow:  make(chan struct{}),
		done:     make(chan struct{}),
		lines:    make(chan outputLine, lineQueue),
		sinkDone: make(chan struct{}),
	}
	p.since = p.clock.Now()
	return p, nil
}

// Start starts the app and waits until it is healthy, it exits, StartTimeout passes, ctx ends or Stop
// is called. On failure it returns a *StartError (with the app's last output lines) and the Process
// ends in state Failed (or Stopped when ctx or Stop interrupted it); nothing keeps running.
//
// On success a supervision goroutine owned by p restarts the app whenever it exits, until Stop is
// called or ctx ends (which stops the app gracefully, as Stop does): pass a context that lives as long
// as the app should. Start may be called once; later calls return ErrAlreadyStarted, and calls after
// Stop return ErrStopped.
func (p *Process) Start(ctx context.Context) error {
	if err := p.begin(); err != nil {
		return err
	}
	r, err := p.startup(ctx)
	if err != nil {
		return err
	}
	go p.supervise(ctx, r)
	return nil
}

func (p *Process) begin() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return ErrAlreadyStarted
	}
	select {
	case <-p.stopCh:
		return ErrStopped
	default:
	}
	p.started = true
	p.setStateLocked(StateStarting)
	go p.sink()
	return nil
}

// startup launches the first run and waits for its health. On failure it tears everything down.
func (p *Process) startup(ctx context.Context) (*run, error) {
	fail := func(err error, r *run, exit *ExitInfo, final State) (*run, error) {
		serr := &StartError{Name: p.spec.Name, Err: err, Exit: exit}
		if r != nil {
			r.readers.Wait() // bounded by outputGrace: the tail is complete
			serr.Tail = r.tail.lines()
		}
		p.teardown(final)
		close(p.done)
		p.log.Error("app start failed", "err", serr)
		return nil, serr
	}
	if !supported {
		return fail(ErrUnsupported, nil, nil, StateFailed)
	}
	if err := p.prepare(); err != nil {
		return fail(err, nil, nil, StateFailed)
	}
	r, err := p.startRun(0)
	if err != nil {
		return fail(err, nil, nil, StateFailed)
	}
	if err := p.waitHealthy(ctx, r); err != nil {
		if p.stopRequested(ctx) {
			exit := p.stopRun(r)
			return fail(err, r, &exit, StateStopped)
		}
		exit := p.killRun(r)
		return fail(err, r, &exit, StateFailed)
	}
	p.setRunning(r)
	return r, nil
}

// prepare checks Dir, creates TempDir and resolves the command.
func (p *Process) prepare() error {
	fi, err := os.Stat(p.spec.Dir)
	if err != nil {
		return fmt.Errorf("app dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("app dir %s: not a directory", p.spec.Dir)
	}
	if err := os.MkdirAll(p.spec.TempDir, 0o700); err != nil {
		return fmt.Errorf("app temp dir: %w", err)
	}
	exe, err := resolveCommand(p.spec.Dir, p.spec.Command[0], p.childPath())
	if err != nil {
		return err
	}
	p.exe = exe
	return nil
}

func (p *Process) stopRequested(ctx context.Context) bool {
	select {
	case <-p.stopCh:
		return true
	default:
		return ctx.Err() != nil
	}
}

// Stop stops the app gracefully: SIGTERM to its process group, SIGKILL to the group after StopTimeout
// (or at once when ctx ends first, in which case Stop returns ctx's error after the kill). It waits for
// the supervision goroutine and the output readers. Stop is idempotent; a Process is not restartable.
// A Failed process stays in state Failed; otherwise the final state is Stopped.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopOnce.Do(func() { close(p.stopCh) })
	started := p.started
	p.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	p.killOnce.Do(func() { close(p.killNow) })
	<-p.done
	return fmt.Errorf("supervisor: stop %s: killed without waiting for StopTimeout: %w", p.spec.Name, ctx.Err())
}

// Addr returns the "host:port" the current (or last) run listens on, "" before the first launch. It
// changes when a restart had to pick a new port: read it per request.
func (p *Process) Addr() string {
	if a := p.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// State returns the current state.
func (p *Process) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Ready reports whether the app is Running (healthy).
func (p *Process) Ready() bool { return p.State() == StateRunning }

// Restarts returns how many times the app was restarted since Start.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// PID returns the current run's process id, 0 when no run is alive.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Status returns a snapshot for the manager API.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{
		Name:     p.spec.Name,
		State:    p.state,
		PID:      p.pid,
		Port:     p.port,
		Restarts: p.restarts,
		Since:    p.since,
	}
	if p.last != nil {
		st.Addr = p.last.addr
		st.Output = p.last.tail.lines()
	}
	if p.state == StateBackoff {
		st.Backoff, st.NextRestart = p.delay, p.nextRestart
	}
	if p.lastExit != nil {
		e := *p.lastExit
		st.LastExit = &e
	}
	return st
}

// setStateLocked changes the state; p.mu must be held.
func (p *Process) setStateLocked(s State) {
	p.state = s
	p.since = p.clock.Now()
}

func (p *Process) setState(s State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setStateLocked(s)
}
