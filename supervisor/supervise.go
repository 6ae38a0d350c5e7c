package supervisor

import (
	"context"
	"time"
)

// supervise owns the app from a successful Start until Stop, ctx's end or Failed: it restarts the app
// whenever it exits. It closes p.done when everything it owns has finished.
func (p *Process) supervise(ctx context.Context, r *run) {
	final := StateStopped
	for r != nil {
		select {
		case <-r.done:
			p.crashed(r)
			r, final = p.relaunch(ctx, r.port)
		case <-p.stopCh:
			p.stopRun(r)
			r = nil
		case <-ctx.Done():
			p.stopRun(r)
			r = nil
		}
	}
	p.teardown(final)
	close(p.done)
}

// crashed handles a run that exited on its own: the rest of its group is killed and the exit recorded;
// a run that stayed healthy for Backoff.ResetAfter resets the backoff.
func (p *Process) crashed(r *run) {
	info := p.killRun(r)
	p.mu.Lock()
	ran := info.At.Sub(p.runningSince)
	if ran >= p.spec.Backoff.ResetAfter {
		p.delay = 0
	}
	p.mu.Unlock()
	p.log.Warn("app exited", "pid", r.pid, "exit", info.String(), "ran", ran)
}

// relaunch restarts the app after the backoff delay until a run is healthy (StateRunning), Stop or
// ctx's end (StateStopped) or MaxRestarts (StateFailed). A launch failure or a run that does not become
// healthy counts as one more crash. It prefers port, the previous run's.
func (p *Process) relaunch(ctx context.Context, port int) (*run, State) {
	for {
		delay, ok := p.enterBackoff()
		if !ok {
			p.log.Error("app failed: too many restarts", "maxRestarts", p.spec.MaxRestarts,
				"window", p.spec.RestartWindow)
			return nil, StateFailed
		}
		p.log.Info("app restart scheduled", "delay", delay)
		select {
		case <-p.clock.After(delay):
		case <-p.stopCh:
			return nil, StateStopped
		case <-ctx.Done():
			return nil, StateStopped
		}
		p.noteRestart()
		r, err := p.startRun(port)
		if err != nil {
			p.mu.Lock()
			p.lastExit = &ExitInfo{Code: -1, Error: err.Error(), At: p.clock.Now()}
			p.mu.Unlock()
			p.log.Error("app restart failed", "err", err)
			continue
		}
		port = r.port
		err = p.waitHealthy(ctx, r)
		if err == nil {
			p.setRunning(r)
			return r, StateRunning
		}
		if p.stopRequested(ctx) {
			p.stopRun(r)
			return nil, StateStopped
		}
		info := p.killRun(r)
		p.log.Warn("app restart not healthy", "pid", r.pid, "err", err, "exit", info.String())
	}
}

// enterBackoff computes the next restart delay and enters StateBackoff, or reports false when
// MaxRestarts restarts already happened within RestartWindow.
func (p *Process) enterBackoff() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	if p.spec.MaxRestarts > 0 {
		cutoff := now.Add(-p.spec.RestartWindow)
		kept := p.restartTimes[:0]
		for _, t := range p.restartTimes {
			if t.After(cutoff) {
				kept = append(kept, t)
			}
		}
		p.restartTimes = kept
		if len(kept) >= p.spec.MaxRestarts {
			p.setStateLocked(StateFailed)
			return 0, false
		}
	}
	p.delay = p.spec.Backoff.Next(p.delay)
	p.setStateLocked(StateBackoff)
	p.nextRestart = now.Add(p.delay)
	return p.delay, true
}

func (p *Process) noteRestart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restarts++
	if p.spec.MaxRestarts > 0 {
		p.restartTimes = append(p.restartTimes, p.clock.Now())
	}
}

// startRun picks a port (prefer if still free), launches a run on it and makes it current.
func (p *Process) startRun(prefer int) (*run, error) {
	port, err := pickPort(p.spec.Host, prefer)
	if err != nil {
		return nil, err
	}
	r, err := p.launch(port)
	if err != nil {
		return nil, err
	}
	p.addr.Store(&r.addr)
	p.mu.Lock()
	p.last, p.pid, p.port = r, r.pid, r.port
	p.nextRestart = time.Time{}
	p.setStateLocked(StateStarting)
	p.mu.Unlock()
	p.log.Info("app launched", "pid", r.pid, "addr", r.addr)
	return r, nil
}

func (p *Process) setRunning(r *run) {
	p.mu.Lock()
	p.setStateLocked(StateRunning)
	p.runningSince = p.since
	p.mu.Unlock()
	p.log.Info("app ready", "pid", r.pid, "addr", r.addr)
}

// stopRun stops r gracefully: SIGTERM to its group, SIGKILL after StopTimeout or when Stop's context
// ended.
func (p *Process) stopRun(r *run) ExitInfo {
	p.setState(StateStopping)
	p.log.Info("app stopping", "pid", r.pid)
	if err := signalGroup(r.pid, sigTerm); err != nil {
		p.log.Warn("app SIGTERM failed", "pid", r.pid, "err", err)
	}
	t := time.NewTimer(p.spec.StopTimeout)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		p.log.Warn("app did not stop in time, killing", "pid", r.pid, "stopTimeout", p.spec.StopTimeout)
	case <-p.killNow:
		p.log.Warn("app stop cut short, killing", "pid", r.pid)
	}
	return p.killRun(r)
}

// killRun SIGKILLs r's process group (whatever is left of it), waits for r's process and records its
// exit. Readers get outputGrace to drain.
func (p *Process) killRun(r *run) ExitInfo {
	if err := signalGroup(r.pid, sigKill); err != nil {
		p.log.Warn("app SIGKILL failed", "pid", r.pid, "err", err)
	}
	<-r.done
	r.finishOutput()
	info := r.exitInfo(p.clock.Now())
	p.mu.Lock()
	p.lastExit = &info
	if p.last == r {
		p.pid = 0
	}
	p.mu.Unlock()
	return info
}

// teardown waits for every run goroutine and the logger sink, then enters the final state.
func (p *Process) teardown(final State) {
	p.runs.Wait()
	close(p.lines)
	<-p.sinkDone
	p.httpc.CloseIdleConnections()
	p.mu.Lock()
	p.pid = 0
	p.nextRestart = time.Time{}
	p.setStateLocked(final)
	p.mu.Unlock()
	p.log.Info("app supervision ended", "state", final)
}
