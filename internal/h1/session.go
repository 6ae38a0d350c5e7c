package h1

import "time"

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
// One thing a short read does not show is the client's close (FIN) queued right behind the bytes it
// returned: that shows only on the next read, which returns nothing. When the request and the
// close arrive together, or before the session starts, the poller's one edge is spent on both and
// the wait would last until the idle timeout. The handler-watch timer covers it: armed by a
// request, it fires every 5 ms while requests come, and once it finds that none came in a whole
// period it peeks at the socket (checkGone): one system call when a train of requests ends, where
// every request used to make one. A close found there ends the wait at once, so a client that
// half-closes after its request has the connection closed within about 15 ms of its answer. (A
// handler running long is watched by pollGone, which finds such a close the same way.)
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
				if c.peerGone.Load() { // the close the last read did not show (see checkGone)
					c.sessOut = sessEnd
					return true
				}
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

// checkGone looks for the client's close of a connection between requests (see above). watchMu is
// held.
func (c *serverConn) checkGone() {
	ended := false
	_ = c.sys.rc.Control(func(fd uintptr) { ended = peekGone(fd) })
	if ended {
		c.endWait()
	}
}

// gone is a polling watcher's finding that the client left while a handler ran: the request's
// context ends, and so does the wait for a next request.
func (c *serverConn) gone() {
	c.cancel()
	c.endWait()
}

// endWait ends a session's wait for a next request, at once if it waits already (through the
// read deadline) and otherwise before it starts (peerGone: the serve loop may still move the
// deadline); what is still in the buffer is served first.
func (c *serverConn) endWait() {
	c.peerGone.Store(true)
	c.idleSet.Store(0)
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
}
