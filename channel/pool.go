package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// pool holds the message connections to one peer address. Slots are
// dialled on demand by the caller that needs them; a failed dial starts a
// backoff during which calls that would dial fail fast.
type pool struct {
	ch    *Channel
	addr  string
	mu    sync.Mutex
	slots []poolSlot

	peer         string // member name of the last successful dial
	failures     int    // consecutive dial failures
	retryAt      time.Time
	lastErr      error
	dials        uint64
	dialFailures uint64
	reconnects   uint64
}

type poolSlot struct {
	conn    *conn
	dialing chan struct{} // closed when the dial in progress ends
	used    bool          // the slot has held a connection before
}

// stateErr reports, under ch.mu, why the Channel cannot send now.
func (ch *Channel) stateErr() error {
	switch ch.state {
	case stateNew:
		return ErrNotStarted
	case stateClosed:
		return ErrClosed
	}
	return nil
}

func (ch *Channel) pool(addr string) (*pool, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if err := ch.stateErr(); err != nil {
		return nil, err
	}
	p := ch.pools[addr]
	if p == nil {
		p = &pool{ch: ch, addr: addr, slots: make([]poolSlot, ch.cfg.PoolSize)}
		ch.pools[addr] = p
	}
	return p, nil
}

// ClosePeer closes the pooled connections to addr and forgets its pool
// (call it when a member leaves). Streams and inbound connections from the
// peer are left alone.
func (ch *Channel) ClosePeer(addr string) {
	ch.mu.Lock()
	p := ch.pools[addr]
	delete(ch.pools, addr)
	ch.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.slots {
		if s.conn != nil {
			s.conn.close(errors.New("peer closed by caller"))
		}
	}
}

// get returns a live connection: slot 0 when ordered (Sends), otherwise the
// least busy one, dialling a free slot when every live one is busy. The
// connection's inflight count is raised under p.mu, so concurrent callers
// spread out; the caller lowers it when done.
func (p *pool) get(ctx context.Context, ordered bool) (*conn, error) {
	for {
		p.mu.Lock()
		c, idx, wait := p.pick(ordered)
		if c != nil {
			c.inflight.Add(1)
			p.mu.Unlock()
			return c, nil
		}
		if wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		if now := p.ch.cfg.Now(); now.Before(p.retryAt) {
			err := fmt.Errorf("%w: %s: retrying in %s after %d failed dials: %w",
				ErrPeerUnavailable, p.addr, p.retryAt.Sub(now).Round(time.Millisecond), p.failures, p.lastErr)
			p.mu.Unlock()
			return nil, err
		}
		done := make(chan struct{})
		p.slots[idx].dialing = done
		p.dials++
		p.mu.Unlock()

		c, err := p.ch.dial(ctx, p.addr, connMessages)
		if err == nil {
			err = p.ch.startConn(c)
		}
		p.mu.Lock()
		p.slots[idx].dialing = nil
		close(done)
		p.record(ctx, idx, c, err)
		if err == nil {
			c.inflight.Add(1)
		}
		p.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrPeerUnavailable, p.addr, err)
		}
		return c, nil
	}
}

// pick chooses under p.mu: a connection to use, a slot to dial (c == nil,
// wait == nil), or a dial to wait for.
func (p *pool) pick(ordered bool) (c *conn, idx int, wait chan struct{}) {
	live := func(s *poolSlot) bool { return s.conn != nil && !s.conn.isClosed() }
	if ordered {
		s := &p.slots[0]
		if live(s) {
			return s.conn, 0, nil
		}
		return nil, 0, s.dialing
	}
	free := -1
	for i := range p.slots {
		s := &p.slots[i]
		switch {
		case live(s):
			if c == nil || s.conn.inflight.Load() < c.inflight.Load() {
				c = s.conn
			}
		case s.dialing != nil:
			wait = s.dialing
		case free < 0:
			free = i
		}
	}
	backingOff := p.ch.cfg.Now().Before(p.retryAt)
	switch {
	case c != nil && (c.inflight.Load() == 0 || free < 0 || backingOff):
		return c, 0, nil
	case c == nil && wait != nil:
		return nil, 0, wait
	case free >= 0:
		return nil, free, nil
	}
	return c, 0, nil
}

// record notes a dial's outcome under p.mu.
func (p *pool) record(ctx context.Context, idx int, c *conn, err error) {
	if err != nil {
		if ctx.Err() != nil {
			return // the caller gave up; says nothing about the peer
		}
		p.failures++
		p.dialFailures++
		p.lastErr = err
		backoff := p.ch.cfg.ReconnectBackoff << min(p.failures-1, 20)
		p.retryAt = p.ch.cfg.Now().Add(min(backoff, p.ch.cfg.MaxReconnectBackoff))
		return
	}
	p.failures, p.lastErr, p.retryAt = 0, nil, time.Time{}
	p.peer = c.peer
	s := &p.slots[idx]
	if s.used {
		p.reconnects++
	}
	s.used = true
	s.conn = c
}

// Send delivers msg to the peer at addr without waiting for its handler.
// It returns once the frame is written. Sends to one peer share one
// connection and are handled in order.
func (ch *Channel) Send(ctx context.Context, addr string, msg Message) error {
	if err := ch.checkBody(msg); err != nil {
		return err
	}
	p, err := ch.pool(addr)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		c, err := p.get(ctx, true)
		if err != nil {
			return fmt.Errorf("channel: send type %d: %w", msg.Type, err)
		}
		err = c.write(kindMsg, msg.Type, 0, msg.Body)
		c.inflight.Add(-1)
		if err == nil {
			return nil
		}
		if attempt > 0 || !errors.Is(err, errNotSent) {
			return fmt.Errorf("channel: send type %d: %w", msg.Type, err)
		}
	}
}

// Request sends msg to the peer at addr and waits for its handler's reply,
// at most AckTimeout (dial included) or until ctx ends. A handler error
// comes back as *RemoteError; no reply in time as ErrAckTimeout.
func (ch *Channel) Request(ctx context.Context, addr string, msg Message) ([]byte, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, ch.cfg.AckTimeout, ErrAckTimeout)
	defer cancel()
	return ch.Go(ctx, addr, msg).Wait(ctx)
}

// Call is a request written to a peer whose reply has not been collected yet (see Go).
type Call struct {
	ch    *Channel
	addr  string
	msg   Message
	c     *conn
	id    uint64
	reply chan frame
	err   error // the request could not be sent
}

// Go writes msg to the peer at addr as a request and returns at once; Wait collects the reply. A
// caller that sends to several peers writes to all of them before it waits for any, instead of a
// goroutine per peer. Every Call must be waited for.
func (ch *Channel) Go(ctx context.Context, addr string, msg Message) *Call {
	call := &Call{ch: ch, addr: addr, msg: msg}
	if call.err = ch.checkBody(msg); call.err != nil {
		return call
	}
	p, err := ch.pool(addr)
	if err != nil {
		call.err = err
		return call
	}
	for attempt := 0; ; attempt++ {
		c, err := p.get(ctx, false)
		if err != nil {
			call.err = fmt.Errorf("channel: request type %d: %w", msg.Type, err)
			return call
		}
		id, reply, err := c.start(msg)
		if err == nil {
			call.c, call.id, call.reply = c, id, reply
			return call
		}
		c.inflight.Add(-1)
		if attempt > 0 || !errors.Is(err, errNotSent) {
			call.err = fmt.Errorf("channel: request type %d to %s: %w", msg.Type, addr, err)
			return call
		}
	}
}

// Wait returns the peer's reply to the call, waiting at most AckTimeout from now or until ctx ends,
// like Request.
func (call *Call) Wait(ctx context.Context) ([]byte, error) {
	if call.err != nil {
		return nil, call.err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, call.ch.cfg.AckTimeout, ErrAckTimeout)
	defer cancel()
	reply, err := call.c.wait(ctx, call.msg.Type, call.id, call.reply)
	call.c.inflight.Add(-1)
	var remote *RemoteError
	if err != nil && !errors.As(err, &remote) {
		err = fmt.Errorf("channel: request type %d to %s: %w", call.msg.Type, call.addr, err)
	}
	return reply, err
}

func (ch *Channel) checkBody(msg Message) error {
	if len(msg.Body) > ch.cfg.MaxFrame {
		return fmt.Errorf("%w: body of type %d is %d bytes, MaxFrame is %d",
			ErrFrameTooLarge, msg.Type, len(msg.Body), ch.cfg.MaxFrame)
	}
	return nil
}
