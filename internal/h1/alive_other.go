//go:build !linux

package h1

import "net"

// connAlive cannot peek without blocking here; the stale-connection retry covers what it misses.
func connAlive(net.Conn) bool { return true }

// idle cannot peek without blocking here: it reports a connection idle.
func idle(uintptr) bool { return true }

// pollGone is for sessions, which need Linux's raw system calls: never called here.
func pollGone(int, <-chan struct{}, func()) {}

// peekGone is for sessions, which need Linux's raw system calls: never called here.
func peekGone(uintptr) bool { return false }
