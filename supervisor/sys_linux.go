//go:build linux

package supervisor

import (
	"errors"
	"os"
	"syscall"
)

const supported = true

// sig is a signal the supervisor sends to an app's process group.
type sig = syscall.Signal

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// sysProcAttr puts the child in its own process group and has the kernel SIGKILL it when the thread
// that forked it exits (see launch for how that thread is kept alive).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends s to the process group led by pid. A group that no longer exists is not an error.
func signalGroup(pid int, s sig) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, s)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// exitDetails returns the exit code (-1 when signalled) and the name of the killing signal.
func exitDetails(ps *os.ProcessState) (int, string) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return -1, ws.Signal().String()
	}
	return ps.ExitCode(), ""
}
