//go:build !linux

package supervisor

import (
	"os"
	"syscall"
)

const supported = false

type sig int

const (
	sigTerm sig = 15
	sigKill sig = 9
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, sig) error { return ErrUnsupported }

func exitDetails(ps *os.ProcessState) (int, string) { return ps.ExitCode(), "" }
