package h1

import (
	"bufio"
	"net"
	"syscall"
)

// awaiter writes what a bufio.Writer holds and then waits until the connection has something to read,
// without the read system call that would only answer "not yet" (EAGAIN) when made right after the
// write: on a proxy hop that failing read is one system call in five.
//
// Go's poller forgets a connection's readiness when a read starts, so a wait begun after the write
// could miss an answer that arrived in between. The write is therefore made from inside the raw
// read (syscall.RawConn.Read), after the poller was reset: whatever arrives after the write wakes
// the wait. Whatever arrived before the reset and was not read yet is forgotten, though: this is
// only for a client, whose peer sends nothing before it is asked (a peer that closed the
// connection meanwhile answers the write with a reset, which wakes the wait). A server cannot use
// it: a pipelined request or a client's close may arrive while a handler runs.
//
// A peer that may break that rule (a process app: code herd does not control) is checked first: with
// peek set, the raw read's first step looks for bytes that are already there (one system call, made
// after the poller's reset, so bytes that come later still wake the wait) and reports the connection
// stale instead of completing the request on it (errUnsent: safe to send again elsewhere; a head
// longer than the write buffer may have partly gone out, never all of it). Bytes the peer writes
// after the peek, before it has the request, are still read as the answer: HTTP/1.1 cannot tell
// them apart.
//
// With sys (the connection's raw system calls), the write inside the raw read is direct
// (sysConn.enter), and so is the first read after the wake, into br: the answer is in the buffer
// when flushAndAwait returns, without a second raw read.
type awaiter struct {
	raw   syscall.RawConn
	bw    *bufio.Writer
	br    *bufio.Reader
	sys   *sysConn
	peek  bool
	calls int
	werr  error
	stale bool
	step  func(uintptr) bool // a.next, allocated once
}

// newAwaiter returns an awaiter for nc, or nil when nc gives no raw access (TLS, pipes). bw and br
// are the connection's buffers; sys, when not nil, is the raw-call connection under them.
func newAwaiter(nc net.Conn, bw *bufio.Writer, br *bufio.Reader, sys *sysConn, peek bool) *awaiter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	a := &awaiter{raw: raw, bw: bw, br: br, sys: sys, peek: peek}
	a.step = a.next
	return a
}

func (a *awaiter) next(fd uintptr) bool {
	a.calls++
	if a.calls > 1 { // woken: readable
		if a.sys == nil || a.br.Buffered() > 0 {
			return true
		}
		a.sys.enter(fd)
		_, err := a.br.Peek(1)
		a.sys.leave()
		switch {
		case err == errAgain:
			return false // woken for what an earlier read took already
		case err != nil:
			a.sys.pending = err // for the caller's next read, which expects to find it
		}
		return true
	}
	if a.peek && !idle(fd) {
		a.stale = true // bytes nobody asked for, or the peer's close: write nothing
		return true
	}
	if a.sys != nil {
		a.sys.enter(fd)
		a.werr = a.bw.Flush()
		a.sys.leave()
	} else {
		a.werr = a.bw.Flush()
	}
	return a.werr != nil
}

// flushAndAwait flushes a.bw and waits until the connection is readable, its read deadline passes
// or it is closed; the read that follows reports which. The error is the write's.
func (a *awaiter) flushAndAwait() error {
	a.calls, a.werr, a.stale = 0, nil, false
	if err := a.raw.Read(a.step); err != nil && a.calls == 0 {
		return err // the wait could not even start (closed): nothing was written
	}
	if a.stale {
		return errUnsent
	}
	return a.werr
}
