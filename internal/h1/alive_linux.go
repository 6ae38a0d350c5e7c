package h1

import (
	"net"
	"syscall"
)

// connAlive reports whether an idle pooled connection is still open: a non-blocking peek finds
// neither the node's FIN nor unexpected bytes. It costs one system call.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	err = rc.Read(func(fd uintptr) bool {
		alive = idle(fd)
		return true
	})
	return err == nil && alive
}

// idle reports whether a connection has nothing to read: a non-blocking peek finds neither bytes nor
// the peer's close.
func idle(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
}
