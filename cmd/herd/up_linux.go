package main

import "syscall"

// childAttr makes a child of `herd up` die with it, even if herd up is killed with SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
