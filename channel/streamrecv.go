package channel

import (
	"fmt"
	"io"
	"sync"
)

// streamRecv is the receiving end of a stream: the reader appends chunks
// (never more than the window it granted), the handler reads them and
// hands credit back as it consumes.
type streamRecv struct {
	c      *conn
	window int

	mu       sync.Mutex
	chunks   [][]byte
	buffered int   // received, not yet read
	unacked  int   // read, not yet credited
	ended    bool  // the sender sent End
	finished bool  // the handler returned
	err      error // io.EOF after End, or why the stream broke
	notify   chan struct{}
}

// serveStreamFrame handles a frame on an accepted stream connection; it
// runs on the reader.
func (c *conn) serveStreamFrame(f frame) error {
	rv := c.recvStream
	switch {
	case rv == nil && f.kind == kindOpen:
		return c.openStream(f)
	case rv != nil && f.kind == kindData:
		return rv.push(f.body)
	case rv != nil && f.kind == kindEnd:
		return rv.end()
	}
	return fmt.Errorf("%w: frame kind %d not allowed on a stream's receiving end", ErrBadFrame, f.kind)
}

// openStream starts the handler for a stream, or refuses it.
func (c *conn) openStream(f frame) error {
	msg := Message{Type: f.typ, Body: f.body}
	h := c.ch.streamHandler(f.typ)
	rv := &streamRecv{c: c, window: c.ch.cfg.StreamWindow, notify: make(chan struct{}, 1)}
	c.recvStream = rv
	if h == nil {
		rv.finished = true
		return c.write(kindResult, codeNoHandler, 0, fmt.Appendf(nil, "no handler for stream type %d", f.typ))
	}
	if err := c.write(kindCredit, 0, uint64(rv.window), nil); err != nil {
		return err
	}
	started := c.ch.goFunc(func() {
		_, err := c.ch.callHandler(func() ([]byte, error) { return nil, h(c.ctx, c.peer, msg, rv) })
		rv.finish()
		code, text := codeOK, []byte(nil)
		if err != nil {
			code, text = codeHandler, []byte(err.Error())
		}
		_ = c.write(kindResult, code, 0, text)
	})
	if !started {
		return ErrClosed
	}
	return nil
}

func (rv *streamRecv) signal() {
	select {
	case rv.notify <- struct{}{}:
	default:
	}
}

func (rv *streamRecv) push(b []byte) error {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	switch {
	case rv.ended:
		return fmt.Errorf("%w: stream data after its end", ErrBadFrame)
	case rv.buffered+rv.unacked+len(b) > rv.window:
		return fmt.Errorf("%w: stream data beyond the granted window of %d bytes", ErrBadFrame, rv.window)
	case rv.finished || len(b) == 0:
		return nil // the handler is gone: drop
	}
	rv.chunks = append(rv.chunks, b)
	rv.buffered += len(b)
	rv.signal()
	return nil
}

func (rv *streamRecv) end() error {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.ended {
		return fmt.Errorf("%w: second stream end", ErrBadFrame)
	}
	rv.ended = true
	if rv.err == nil {
		rv.err = io.EOF
	}
	rv.signal()
	return nil
}

// fail breaks the stream unless it already ended; buffered data stays
// readable either way.
func (rv *streamRecv) fail(err error) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.err == nil {
		rv.err = err
	}
	rv.signal()
}

// finish drops what the handler left unread.
func (rv *streamRecv) finish() {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.finished = true
	rv.chunks = nil
	rv.buffered = 0
}

// Read implements io.Reader for the handler.
func (rv *streamRecv) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		rv.mu.Lock()
		if len(rv.chunks) > 0 {
			n := copy(p, rv.chunks[0])
			rv.chunks[0] = rv.chunks[0][n:]
			if len(rv.chunks[0]) == 0 {
				rv.chunks[0] = nil
				rv.chunks = rv.chunks[1:]
			}
			rv.buffered -= n
			rv.unacked += n
			grant := 0
			if rv.unacked >= rv.window/2 && !rv.ended {
				grant, rv.unacked = rv.unacked, 0
			}
			rv.mu.Unlock()
			if grant > 0 {
				_ = rv.c.write(kindCredit, 0, uint64(grant), nil)
			}
			return n, nil
		}
		err := rv.err
		rv.mu.Unlock()
		if err != nil {
			return 0, err
		}
		<-rv.notify
	}
}
