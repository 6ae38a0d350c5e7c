//go:build !linux

package main

import "syscall"

// childAttr: outside Linux there is no parent-death signal; herd up stops its children on exit.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
