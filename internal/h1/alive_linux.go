package h1

import (
	"net"
	"syscall"
	"time"
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

// pollGone watches connection fd for the client going away while a handler runs inside a session
// (see session.go), which holds the connection's reads: a non-blocking peek now and then, less
// often as the handler runs on. gone is called when the peek finds the client's close or a broken
// connection; bytes found instead are the next request (the client is still there) and end the
// watch, as does stop closing.
func pollGone(fd int, stop <-chan struct{}, gone func()) {
	var b [1]byte
	wait := watchDelay
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		case err == nil && n > 0:
			return
		default:
			gone()
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
		wait = min(2*wait, maxPollGone)
		t.Reset(wait)
	}
}

// maxPollGone bounds the time between pollGone's peeks.
const maxPollGone = 100 * time.Millisecond
