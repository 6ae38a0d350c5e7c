package h1

// The server's session. Go's poller forgets a connection's read readiness whenever a read starts
// (see awaiter), so a server that reads the next request right after sending a response makes a
// read that can only answer "not yet" (EAGAIN) most of the time: on a proxy hop, one system call
// in five. A session avoids it: the connection's fast requests are read, served and answered from
// inside one raw read of the connection (syscall.RawConn.Read), whose callback may return false to
// wait for the poller without reading first, as long as the last read took everything the socket
// held (sysConn.drained): the poller is edge-triggered and the readiness is not reset within one
// raw read, so whatever arrives after that read (a pipelined request, the client's close) wakes the
// wait or is already noted. Reads and writes inside the session are direct (sysConn.enter).
//
// The session hands the connection back to the serve loop for anything but a whole fast request
// in the buffer: a partial head (read with the header timeout there), a request for Handler, a
// declined one. While a handler runs in a session, nothing else may read the connection (the
// raw read holds it), so the watch for a client going away polls it instead (pollGone).

// How a session ended.
const (
	sessEnd      = iota // the connection is done (closed, broken, timed out, or shutting down)
	sessPartial         // the buffer holds bytes that are not a whole fast request; state is idle
	sessDeclined        // the fast handler declined the buffered request: Handler's; state is active
)

// session runs the connection's session until it ends or hands the connection back.
func (c *serverConn) session() int {
	c.sessOut = sessEnd
	if err := c.sys.rc.Read(c.sessFn); err != nil {
		return sessEnd // the wait ended: the idle deadline passed, or the connection was closed
	}
	return c.sessOut
}

// sessionStep is the session's raw-read callback: called first after the poller's reset and then
// after every wait; false waits for the connection to become readable.
func (c *serverConn) sessionStep(fd uintptr) bool {
	sys := c.sys
	sys.enter(fd)
	defer sys.leave()
	sys.drained = false // the first call, or one after a wait: read before waiting again
	for {
		if c.br.Buffered() == 0 {
			if sys.drained {
				return false
			}
			if _, err := c.br.Peek(1); err != nil {
				if err == errAgain {
					return false
				}
				c.sessOut = sessEnd // the client closed the connection, or it broke
				return true
			}
		}
		x := c.fastExchange()
		if x == nil {
			c.sessOut = sessPartial
			return true
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) && !c.state.CompareAndSwap(stateNew, stateActive) {
			c.sessOut = sessEnd // Shutdown closed it
			return true
		}
		served, keep := c.serveExchange(x)
		switch {
		case !served:
			c.sessOut = sessDeclined
			return true
		case !keep:
			_ = c.bw.Flush()
			c.sessOut = sessEnd
			return true
		case !c.between():
			c.sessOut = sessEnd
			return true
		}
	}
}
