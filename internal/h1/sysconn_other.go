//go:build !linux

package h1

import (
	"errors"
	"net"
	"syscall"
)

// rawIO returns c: raw system calls are used on Linux only.
func rawIO(c net.Conn) net.Conn { return c }

const maxVec = 8

// sysConn is Linux's raw-call connection (see sysconn_linux.go); elsewhere no connection is one,
// and this stand-in only lets the code that looks for one compile.
type sysConn struct {
	net.Conn
	rc      syscall.RawConn
	direct  bool
	fd      uintptr
	drained bool
	pending error
}

func (s *sysConn) enter(uintptr) {}
func (s *sysConn) leave()        {}

// errAgain is a direct read that found nothing to read (never on this platform).
var errAgain = errors.New("h1: nothing to read yet")
