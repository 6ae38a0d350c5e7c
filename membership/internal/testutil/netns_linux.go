package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// reexecInNetns re-runs the test binary in a new network namespace; ok is
// false when that could not start (then the caller runs the tests here).
func reexecInNetns() (code int, ok bool) {
	// Pdeathsig fires when the creating thread exits: keep this one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), NetnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), true
		}
		fmt.Fprintf(os.Stderr, "re-exec in a private network namespace failed (%v); running here\n", err)
		return 0, false
	}
	return 0, true
}
