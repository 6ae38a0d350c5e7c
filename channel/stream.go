package channel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// StreamHandler receives one stream of type msg.Type: msg.Body is the
// header the sender passed to OpenStream, r yields the payload and returns
// io.EOF at its end, or an error wrapping ErrStreamAborted if the sender
// gave up. The returned error (or nil) is what the sender's Close returns.
// ctx is cancelled when the connection or Channel closes; Shutdown waits
// for the handler to return.
type StreamHandler func(ctx context.Context, from string, msg Message, r io.Reader) error

// HandleStream registers h for streams of type typ, replacing any earlier
// one.
func (ch *Channel) HandleStream(typ uint16, h StreamHandler) {
	ch.hmu.Lock()
	defer ch.hmu.Unlock()
	ch.streams[typ] = h
}

func (ch *Channel) streamHandler(typ uint16) StreamHandler {
	ch.hmu.RLock()
	defer ch.hmu.RUnlock()
	return ch.streams[typ]
}

// Stream is the sending end of a transfer opened by OpenStream. Write
// splits data into chunks of Config.StreamChunk and blocks while the
// receiver's window is full. Close ends the stream and returns the
// receiver's verdict. Methods may be called from several goroutines; calls
// are serialized.
type Stream struct {
	c     *conn
	typ   uint16
	chunk int
	stop  func() bool // detaches the OpenStream context

	mu       sync.Mutex // serializes Write, Close and Abort
	closed   bool
	closeErr error

	credit   atomic.Int64
	creditCh chan struct{} // signalled when credit arrives
	resultCh chan struct{} // closed when the receiver's result arrives
	result   error         // valid once resultCh is closed
}

// OpenStream dials a dedicated connection to the peer at addr and opens a
// stream of type msg.Type, with msg.Body as the header handed to the peer's
// StreamHandler. It returns once the peer has accepted the stream; a peer
// without a handler yields a *RemoteError wrapping ErrNoHandler. ctx covers
// the stream's whole life: cancelling it aborts the transfer.
func (ch *Channel) OpenStream(ctx context.Context, addr string, msg Message) (*Stream, error) {
	if err := ch.checkBody(msg); err != nil {
		return nil, err
	}
	ch.mu.Lock()
	err := ch.stateErr()
	ch.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c, err := ch.dial(ctx, addr, connStream)
	if err != nil {
		return nil, fmt.Errorf("channel: open stream type %d: %w: %s: %w", msg.Type, ErrPeerUnavailable, addr, err)
	}
	s := &Stream{
		c: c, typ: msg.Type, chunk: ch.cfg.StreamChunk,
		creditCh: make(chan struct{}, 1), resultCh: make(chan struct{}),
	}
	c.sendStream = s
	if err := ch.startConn(c); err != nil {
		return nil, err
	}
	s.stop = context.AfterFunc(ctx, func() {
		c.close(fmt.Errorf("%w: %w", ErrStreamAborted, context.Cause(ctx)))
	})
	fail := func(err error) (*Stream, error) {
		s.stop()
		c.close(err)
		return nil, fmt.Errorf("channel: open stream type %d to %s: %w", msg.Type, addr, err)
	}
	if err := c.write(kindOpen, msg.Type, 0, msg.Body); err != nil {
		return fail(err)
	}
	select {
	case <-s.creditCh:
		s.creditCh <- struct{}{} // leave the signal for Write
		return s, nil
	case <-s.resultCh:
		if s.credit.Load() > 0 {
			return s, nil // accepted, and the handler already returned: Close reports it
		}
		if s.result == nil {
			s.result = errors.New("receiver finished before the stream started")
		}
		return fail(s.result)
	case <-c.done:
		return fail(c.closedErr())
	}
}

// onFrame handles frames the receiver sends back; it runs on the reader.
func (s *Stream) onFrame(f frame) error {
	switch f.kind {
	case kindCredit:
		if f.id == 0 || f.id > MaxMaxFrame || s.credit.Add(int64(f.id)) > 2*MaxMaxFrame {
			return fmt.Errorf("%w: stream credit %d out of range", ErrBadFrame, f.id)
		}
		select {
		case s.creditCh <- struct{}{}:
		default:
		}
		return nil
	case kindResult:
		select {
		case <-s.resultCh:
			return fmt.Errorf("%w: second stream result", ErrBadFrame)
		default:
		}
		if f.typ != codeOK {
			s.result = &RemoteError{Peer: s.c.peer, Type: s.typ, Msg: string(f.body), code: f.typ}
		}
		close(s.resultCh)
		return nil
	}
	return fmt.Errorf("%w: frame kind %d not allowed on a stream's sending end", ErrBadFrame, f.kind)
}

// Write sends p, blocking while the receiver's window is full.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrStreamClosed
	}
	written := 0
	for len(p) > 0 {
		if err := s.waitCredit(); err != nil {
			return written, err
		}
		n := int(min(int64(len(p)), int64(s.chunk), s.credit.Load()))
		if err := s.c.write(kindData, 0, 0, p[:n]); err != nil {
			return written, err
		}
		s.credit.Add(int64(-n))
		written += n
		p = p[n:]
	}
	return written, nil
}

func (s *Stream) waitCredit() error {
	for {
		select {
		case <-s.resultCh:
			if s.result != nil {
				return s.result
			}
			return fmt.Errorf("%w: receiver finished early", ErrStreamClosed)
		default:
		}
		if s.credit.Load() > 0 {
			return nil
		}
		select {
		case <-s.creditCh:
		case <-s.resultCh:
		case <-s.c.done:
			return s.c.closedErr()
		}
	}
}

// Close ends the stream, waits for the receiver's handler to return and
// returns its error (a *RemoteError), or why the stream broke. It is
// idempotent.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	err := s.c.write(kindEnd, 0, 0, nil)
	if err == nil {
		select {
		case <-s.resultCh:
			err = s.result
		case <-s.c.done:
			err = s.c.closedErr()
		}
	}
	s.stop()
	s.c.close(errors.New("stream closed"))
	s.closeErr = err
	return err
}

// Abort abandons the stream: the receiver's reader fails with
// ErrStreamAborted. It returns nil, or the error of an earlier Close.
func (s *Stream) Abort() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	s.closeErr = ErrStreamAborted
	s.stop()
	s.c.close(ErrStreamAborted)
	return nil
}
