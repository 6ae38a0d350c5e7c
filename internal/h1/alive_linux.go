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

// What a non-blocking peek at a connection finds.
const (
	peekNothing = iota // nothing to read yet
	peekBytes          // bytes
	peekEnd            // the peer's close, or an error (a reset)
)

// peek looks at connection fd without reading from it or waiting: one system call.
func peek(fd uintptr) int {
	var b byte
	for {
		n, e := peekCall(fd, &b)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN || e == syscall.EWOULDBLOCK:
			return peekNothing
		case e == 0 && n > 0:
			return peekBytes
		}
		return peekEnd
	}
}

// idle reports whether a connection has nothing to read: a non-blocking peek finds neither bytes nor
// the peer's close.
func idle(fd uintptr) bool { return peek(fd) == peekNothing }

// peekGone reports whether connection fd has ended: the peer closed it, or it broke.
func peekGone(fd uintptr) bool { return peek(fd) == peekEnd }

// pollGone watches connection fd for the client going away while a handler runs inside a session
// (see session.go), which holds the connection's reads: a non-blocking peek now and then, less
// often as the handler runs on. gone is called when the peek finds the client's close or a broken
// connection; bytes found instead are the next request (the client is still there) and end the
// watch, as does stop closing.
func pollGone(fd int, stop <-chan struct{}, gone func()) {
	wait := watchDelay
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		switch peek(uintptr(fd)) {
		case peekBytes:
			return
		case peekEnd:
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

// maxPollGone bounds the time between pollGone's peeks: a second, so that a long-running handler
// (a long poll, an event stream) costs about one system call a second.
const maxPollGone = time.Second
