package channel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// errNotSent marks a write refused because its connection had already
// closed: nothing reached the peer, so the caller may retry elsewhere.
var errNotSent = errors.New("nothing sent")

// conn is one authenticated connection. Its reader goroutine owns recv and
// the dispatch of inbound frames; writers serialize on wmu, which also keeps
// the record counter in wire order.
type conn struct {
	ch       *Channel
	nc       net.Conn
	br       *bufio.Reader
	peer     string // authenticated member name
	remote   string // remote address
	outbound bool
	kind     byte
	stats    *peerCounters

	wmu     sync.Mutex
	send    *recordCipher
	recv    *recordCipher
	writeDL time.Duration // when the write deadline was last set, on monoClock (under wmu)

	ctx       context.Context // cancelled when the connection closes
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	err       error // why it closed; valid once done is closed

	pmu      sync.Mutex
	nextID   uint64
	pending  map[uint64]chan frame
	inflight atomic.Int32 // callers holding it from pool.get
	lastRecv atomic.Int64 // unix nanoseconds

	sendStream *Stream     // outbound stream connections
	recvStream *streamRecv // inbound stream connections, set by the reader
}

func (ch *Channel) newConn(nc net.Conn, br *bufio.Reader, s *session, outbound bool) *conn {
	ctx, cancel := context.WithCancel(ch.ctx)
	c := &conn{
		ch: ch, nc: nc, br: br, peer: s.peer, remote: nc.RemoteAddr().String(),
		outbound: outbound, kind: s.kind, send: s.send, recv: s.recv,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		pending: make(map[uint64]chan frame),
	}
	c.lastRecv.Store(time.Now().UnixNano())
	return c
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close shuts the connection once, recording why.
func (c *conn) close(err error) {
	c.closeOnce.Do(func() {
		c.err = err
		c.cancel()
		_ = c.nc.Close()
		close(c.done)
		c.ch.untrack(c.nc)
		if c.stats != nil {
			c.stats.conns.Add(-1)
		}
		c.ch.log.Debug("channel.conn_closed", "peer", c.peer, "remote", c.remote,
			"outbound", c.outbound, "reason", err)
	})
}

func (c *conn) closedErr() error {
	return fmt.Errorf("%w: peer %q (%s): %w", ErrConnClosed, c.peer, c.remote, c.err)
}

// write seals and sends one frame. A write error closes the connection:
// a partly written record cannot be taken back.
func (c *conn) write(kind byte, typ uint16, id uint64, body []byte) error {
	bp := pooledRecord(kind, typ, id, body)
	defer releaseRecord(bp)
	rec := *bp
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return fmt.Errorf("%w: %w", errNotSent, c.closedErr())
	}
	if err := c.send.seal(rec); err != nil {
		c.close(err)
		return fmt.Errorf("%w: %w", errNotSent, c.closedErr())
	}
	if now := monoClock(); now-c.writeDL >= deadlineSlack(c.ch.cfg.IdleTimeout) {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.ch.cfg.IdleTimeout))
		c.writeDL = now
	}
	if _, err := c.nc.Write(rec); err != nil {
		c.close(fmt.Errorf("write: %w", err))
		return c.closedErr()
	}
	c.stats.sent(len(rec))
	return nil
}

// start registers a request and writes its frame; wait collects the reply.
func (c *conn) start(msg Message) (uint64, chan frame, error) {
	ch := make(chan frame, 1)
	c.pmu.Lock()
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.pmu.Unlock()
	if err := c.write(kindRequest, msg.Type, id, msg.Body); err != nil {
		c.forget(id)
		return 0, nil, err
	}
	return id, ch, nil
}

func (c *conn) forget(id uint64) {
	c.pmu.Lock()
	delete(c.pending, id)
	c.pmu.Unlock()
}

// wait waits for the reply to request id.
func (c *conn) wait(ctx context.Context, typ uint16, id uint64, ch chan frame) ([]byte, error) {
	defer c.forget(id)
	select {
	case f := <-ch:
		if f.kind == kindReply {
			return f.body, nil
		}
		return nil, &RemoteError{Peer: c.peer, Type: typ, Msg: string(f.body), code: f.typ}
	case <-c.done:
		return nil, c.closedErr()
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// readLoop reads frames until the connection fails or closes.
func (c *conn) readLoop() {
	var err error
	defer func() {
		c.close(err)
		if c.recvStream != nil {
			c.recvStream.fail(fmt.Errorf("%w: %w", ErrStreamAborted, c.closedErr()))
		}
	}()
	// Records for a handler that is done with the body when it returns (HandleTransient) are read
	// into buf, again and again; every other frame gets a body of its own.
	var buf []byte
	var readDL time.Duration // when the read deadline was last set, on monoClock
	slack := deadlineSlack(c.ch.cfg.IdleTimeout)
	for {
		if now := monoClock(); now-readDL >= slack {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.ch.cfg.IdleTimeout))
			readDL = now
		}
		var f frame
		var n int
		var rec []byte
		f, n, rec, err = readRecordInto(c.br, c.recv, c.ch.cfg.MaxFrame, buf)
		if err == nil {
			c.lastRecv.Store(time.Now().UnixNano())
			c.stats.received(n)
			fresh := cap(rec) > cap(buf)
			var h Handler // a message's handler, looked up once with its transient flag
			lent := false
			if c.servesMessages(f) {
				h, lent = c.ch.handlerOf(f.typ)
			}
			switch {
			case lent:
				if fresh && cap(rec) <= maxLentRecord {
					buf = rec // kept for the next records
				}
			case !fresh:
				f.body = bytes.Clone(f.body) // buf is read into again
			}
			err = c.dispatch(f, h)
		}
		if err != nil {
			if errors.Is(err, ErrBadFrame) && !c.isClosed() {
				c.ch.stats.frameErrors.Add(1)
				c.ch.log.Warn("channel.bad_frame", "peer", c.peer, "remote", c.remote, "err", err)
			}
			return
		}
	}
}

// deadlineSlack is how stale a connection's idle deadline may get before it is set again. Moving a
// deadline costs a timer update; doing it for every record was a measurable share of a replication
// round trip. A connection thus closes after between 15/16 of IdleTimeout and IdleTimeout without
// traffic, and a write gets at least 15/16 of it.
func deadlineSlack(idle time.Duration) time.Duration { return idle / 16 }

// monoEpoch anchors monoClock.
var monoEpoch = time.Now()

// monoClock is the monotonic time since the process started, never 0: a step of the wall clock
// must not make a deadline look fresh.
func monoClock() time.Duration { return time.Since(monoEpoch) + 1 }

// maxLentRecord bounds the read buffer a connection keeps for transient handlers' records.
const maxLentRecord = 256 << 10

// servesMessages reports whether f is a message or request for a handler on this connection.
func (c *conn) servesMessages(f frame) bool {
	return c.kind == connMessages && !c.outbound && (f.kind == kindMsg || f.kind == kindRequest)
}

// dispatch routes a frame by connection kind and direction; a frame that
// does not belong on this connection is a protocol violation. h is the
// handler of a message frame (nil: none registered).
func (c *conn) dispatch(f frame, h Handler) error {
	switch {
	case f.kind == kindPing && !c.outbound:
		return c.write(kindPong, 0, 0, nil)
	case f.kind == kindPong && c.outbound:
		return nil
	case c.servesMessages(f):
		c.serveMessage(f, h)
		return nil
	case c.kind == connMessages && c.outbound && (f.kind == kindReply || f.kind == kindError):
		c.pmu.Lock()
		waiter := c.pending[f.id]
		delete(c.pending, f.id)
		c.pmu.Unlock()
		if waiter != nil {
			waiter <- f
		}
		return nil
	case c.kind == connStream && !c.outbound:
		return c.serveStreamFrame(f)
	case c.kind == connStream && c.outbound:
		return c.sendStream.onFrame(f)
	}
	return fmt.Errorf("%w: frame kind %d not allowed on this connection", ErrBadFrame, f.kind)
}

// serveMessage runs the handler inline: one message at a time per
// connection, in arrival order.
func (c *conn) serveMessage(f frame, h Handler) {
	msg := Message{Type: f.typ, Body: f.body}
	var reply []byte
	var err error
	code := codeOK
	if h == nil {
		code, err = codeNoHandler, fmt.Errorf("no handler for message type %d", f.typ)
	} else {
		reply, err = c.ch.callHandler(func() ([]byte, error) { return h(c.ctx, c.peer, msg) })
		if err == nil && len(reply) > c.ch.cfg.MaxFrame {
			err = fmt.Errorf("%w: reply of %d bytes, MaxFrame is %d", ErrFrameTooLarge, len(reply), c.ch.cfg.MaxFrame)
		}
		if err != nil {
			code = codeHandler
		}
	}
	if f.kind == kindMsg {
		if err != nil {
			c.ch.log.Debug("channel.message_failed", "peer", c.peer, "type", f.typ, "err", err)
		}
		return
	}
	if err != nil {
		_ = c.write(kindError, code, f.id, []byte(err.Error()))
		return
	}
	_ = c.write(kindReply, f.typ, f.id, reply)
}

// callHandler runs a handler, turning a panic into an error so one bad
// message cannot take the member down.
func (ch *Channel) callHandler(fn func() ([]byte, error)) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			ch.log.Error("channel.handler_panic", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return fn()
}

// keepAlive pings a dialled connection on which nothing has arrived for
// half the KeepAlive interval, so both ends keep seeing traffic.
func (c *conn) keepAlive() {
	every := c.ch.cfg.KeepAlive / 2
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(time.Unix(0, c.lastRecv.Load())) >= every {
				if c.write(kindPing, 0, 0, nil) != nil {
					return
				}
			}
		}
	}
}
