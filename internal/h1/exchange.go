package h1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RawResponse is a peer's answer to a request sent with Transport.Send: the head parsed in place and
// the body. Fields point into the connection's read buffer and are valid until the body is read.
// Close ends it: after the body was read to its end, the connection goes back to the pool.
type RawResponse struct {
	Code   int
	Fields []Field
	// Framing of the body as the peer sent it: Length >= 0 is its Content-Length, Chunked a chunked
	// body, neither a body that ends with the connection. NoBody: none at all (a HEAD request, 304,
	// 204, 1xx); for a HEAD and a 304, Length still carries a Content-Length the peer sent (-1 when
	// none), for a 204 or 1xx it is -1.
	Length  int64
	Chunked bool
	NoBody  bool
	// Trailer holds the trailer fields of a chunked body once it was read to its end.
	Trailer http.Header

	c    *h1Conn
	body framedBody
	stop func() bool
	keep bool
	eof  bool
	done bool
	arr  [MaxFields]Field
}

// Read reads the body.
func (r *RawResponse) Read(p []byte) (int, error) {
	if r.done || r.eof || r.NoBody {
		r.eof = true
		return 0, io.EOF
	}
	n, err := r.body.next(p)
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

// Buffered returns the body bytes of a Content-Length body that are already in the connection's
// buffer, so that they can be passed on without a copy; Consume(len) must follow before the next
// Read. Nil when there are none (or the body is chunked or ends with the connection).
func (r *RawResponse) Buffered() []byte {
	b := &r.body
	if r.done || r.eof || r.NoBody || b.chunk != nil || b.left <= 0 || b.err != nil || b.eof {
		return nil
	}
	p, _ := b.br.Peek(int(min(int64(b.br.Buffered()), b.left)))
	return p
}

// Ended reports whether the body was read to its end (or there was none).
func (r *RawResponse) Ended() bool { return r.eof || r.NoBody }

// Consume drops the first n bytes Buffered returned: they were passed on.
func (r *RawResponse) Consume(n int) {
	b := &r.body
	_, _ = b.br.Discard(n)
	b.left -= int64(n)
	if b.left == 0 {
		b.eof, r.eof = true, true
	}
}

// Close ends the exchange: the connection goes back to the pool when the body was read to its end
// (or there was none) and the peer keeps it open, and is closed otherwise. Nothing of r may be
// used after Close: the connection's next exchange reuses it.
func (r *RawResponse) Close() {
	if r.done {
		return
	}
	r.done = true
	r.c.release(r.stop, r.keep && (r.eof || r.NoBody), nil)
}

// Abort ends the exchanges of one client, at most one at a time, when that client goes away: a
// cheaper way than a context to cancel a Send, made once per client connection instead of once per
// request (Fire it from context.AfterFunc of the connection's context).
type Abort struct {
	mu     sync.Mutex
	c      *h1Conn // the connection of the exchange in progress
	fired  atomic.Bool
	hit    bool // fired while c was in use: c's deadline is poisoned
	detach func() bool
}

// NewAbort returns an Abort that has not fired.
func NewAbort() *Abort {
	a := &Abort{}
	a.detach = a.release
	return a
}

// Fire aborts the exchange in progress, if any, and every later one.
func (a *Abort) Fire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fired.Store(true)
	if a.c != nil {
		a.hit = true
		_ = a.c.conn.SetDeadline(time.Unix(1, 0))
	}
}

// attach makes c the connection Fire aborts; false means the Abort has fired already.
func (a *Abort) attach(c *h1Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fired.Load() {
		return false
	}
	a.c, a.hit = c, false
	return true
}

// release ends the attachment; false means Fire hit the connection (as a context's AfterFunc stop
// reports false once the function ran).
func (a *Abort) release() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.c = nil
	return !a.hit
}

// errAborted is a Send whose Abort had fired.
var errAborted = fmt.Errorf("h1: %w", context.Canceled)

// testHookHeadBuffered, when set by a test, runs between the head going to the write buffer and the
// awaiter's wait: a peer answering in that gap must still wake the wait.
var testHookHeadBuffered func()

// Send sends a request head without a body (head is its bytes, ending with the empty line) to
// addr and reads the answer's head, like RoundTrip for an idempotent request: a pooled connection
// the peer had closed is replaced by a fresh one. Interim answers (1xx other than 101) go to
// interim, whose Fields are valid only during the call; 100 Continue is dropped. isHead tells that
// the request's method is HEAD (its answer has no body). ab, when not nil, ends the exchange when
// it fires; otherwise ctx does when it is done (ctx also bounds the dial).
func (t *Transport) Send(ctx context.Context, ab *Abort, addr string, head []byte, isHead bool, interim func(code int, f []Field) error) (*RawResponse, error) {
	if ab != nil && ab.fired.Load() {
		return nil, errAborted
	}
	now := monoClock()
	for fresh := false; ; fresh = true {
		c, err := t.conn(ctx, addr, fresh, t.checkIdle, true, now)
		if err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, ab, head, isHead, interim)
		if err == nil {
			return resp, nil
		}
		c.close()
		if c.gone.Load() {
			return nil, fmt.Errorf("%w: %s: %w", ErrGone, addr, err)
		}
		if fresh || !c.reused || errors.Is(err, errAborted) || !c.mayResend(err, ctx.Err() != nil, true, true) {
			return nil, err
		}
	}
}

// send writes head on c and reads the answer's head.
func (c *h1Conn) send(ctx context.Context, ab *Abort, head []byte, isHead bool, interim func(int, []Field) error) (*RawResponse, error) {
	c.read, c.written = 0, 0
	c.responded.Store(false)
	var stop func() bool
	if ab != nil {
		if !ab.attach(c) {
			return nil, errAborted
		}
		stop = ab.detach
	} else {
		stop = context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	}
	c.armHeader()
	// The last byte stays in the buffer whatever the head's size, so that the awaiter writes it
	// after the poller's reset: an answer to a head written out whole before would wake nobody.
	_, _ = c.bw.Write(head[:len(head)-1])
	_ = c.bw.WriteByte(head[len(head)-1])
	if testHookHeadBuffered != nil {
		testHookHeadBuffered()
	}
	var err error
	if c.await != nil && c.br.Buffered() == 0 {
		err = c.await.flushAndAwait()
	} else {
		err = c.bw.Flush()
	}
	if err != nil {
		stop()
		return nil, err
	}
	r := c.raw
	if r == nil {
		r = &RawResponse{c: c}
		c.raw = r
	}
	for n1xx := 0; ; n1xx++ {
		err = c.readRawHead(r, isHead)
		if err == nil && r.Code < 200 && r.Code != http.StatusSwitchingProtocols {
			switch {
			case n1xx == maxInterim:
				err = fmt.Errorf("h1: more than %d interim (1xx) answers", maxInterim)
			case r.Code != http.StatusContinue && interim != nil:
				err = interim(r.Code, r.Fields)
			}
			if err == nil {
				continue
			}
		}
		if err != nil {
			stop()
			if ab != nil && ab.fired.Load() {
				return nil, errAborted
			}
			return nil, c.headError(err, ctx.Err() != nil)
		}
		break
	}
	c.responded.Store(true)
	r.stop, r.done, r.eof = stop, false, false
	switch {
	case r.Code == http.StatusSwitchingProtocols:
		r.keep = false // nothing asked for a switch: the connection is not HTTP any more
	case r.NoBody || r.Length >= 0 && int64(c.br.Buffered()) >= r.Length:
		return r, nil // the whole answer is in the buffer: the header deadline may stay
	}
	c.disarm() // the body is read from the socket, without a deadline
	return r, nil
}

// readRawHead reads one response head into r: status, fields and the body's framing.
func (c *h1Conn) readRawHead(r *RawResponse, isHead bool) error {
	head, err := c.rawHead()
	if err != nil {
		return err
	}
	nl := bytes.IndexByte(head, '\n')
	line := bytes.TrimSuffix(head[:nl], []byte("\r"))
	proto, status, _ := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(status, []byte(" "))
	minor, known := protoMinor(string(proto))
	n, cerr := strconv.Atoi(string(code))
	if !known || len(code) != 3 || cerr != nil || n < 100 {
		return fmt.Errorf("malformed status line %q", truncate(string(line)))
	}
	unfold(head[nl+1:])
	fields, err := parseResponseFields(head[nl+1:], r.arr[:0])
	if err != nil {
		return err
	}
	r.Code, r.Fields, r.Trailer = n, fields, nil
	return r.framing(c, minor, isHead)
}

// rawHead returns the next head from c.br (status line to empty line), consumed from the buffer
// but still in it: valid until the next read. A head longer than the buffer is gathered in a
// slice of its own, up to maxResponseHead.
func (c *h1Conn) rawHead() ([]byte, error) {
	br := c.br
	var gathered []byte
	searched := 0 // bytes of the buffer already searched for the end (less the 3 an end may span)
	for {
		buf, _ := br.Peek(br.Buffered())
		switch {
		case gathered == nil:
			if end := headEnd(buf, searched); end > 0 {
				_, _ = br.Discard(end)
				return buf[:end], nil
			}
			searched = max(len(buf)-3, 0)
			if len(buf) == br.Size() { // longer than the buffer
				gathered = append(make([]byte, 0, 2*len(buf)), buf...)
				_, _ = br.Discard(len(buf))
			}
		case len(buf) > 0:
			from := len(gathered)
			gathered = append(gathered, buf...)
			if end := headEnd(gathered, max(from-3, 0)); end > 0 {
				if end > maxResponseHead {
					return nil, errors.New("malformed response: head larger than 1 MiB")
				}
				_, _ = br.Discard(end - from)
				return gathered[:end], nil
			}
			_, _ = br.Discard(len(buf))
			if len(gathered) > maxResponseHead {
				return nil, errors.New("malformed response: head larger than 1 MiB")
			}
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			if errors.Is(err, io.EOF) && gathered == nil && br.Buffered() == 0 {
				return nil, io.EOF // nothing at all: the peer closed (a stale pooled connection)
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading the response head: %w", err)
		}
	}
}

// headEnd returns the length of the head at the start of b (through the empty line that ends it,
// CRLF or bare LF line ends), or 0 when b does not hold all of it; the search starts at from.
func headEnd(b []byte, from int) int {
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// unfold replaces each obsolete line folding (a line end followed by white space) with spaces, in
// place, as RFC 9112 5.2 lets a recipient do before it interprets or forwards the field.
func unfold(b []byte) {
	for i := 1; i+1 < len(b); i++ {
		if b[i] == '\n' && (b[i+1] == ' ' || b[i+1] == '\t') {
			b[i] = ' '
			if b[i-1] == '\r' {
				b[i-1] = ' '
			}
		}
	}
}

// parseResponseFields parses a response's field lines (CRLF or LF line ends, folding already
// undone) into dst; past its capacity (MaxFields) the slice grows.
func parseResponseFields(b []byte, dst []Field) ([]Field, error) {
	for {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, errors.New("malformed response: unterminated head")
		}
		line := b[:nl]
		b = b[nl+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			return dst, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return nil, fmt.Errorf("malformed response: malformed header line %q", truncate(string(line)))
		}
		v := TrimOWS(line[colon+1:])
		for _, ch := range v {
			if (ch < ' ' && ch != '\t') || ch == 0x7f {
				return nil, fmt.Errorf("malformed response: invalid character in header %q", truncate(string(line[:colon])))
			}
		}
		dst = append(dst, Field{Name: line[:colon], Value: v})
	}
}

// framing decides where the body ends (RFC 9112 6.3), as responseFraming does for RoundTrip.
func (r *RawResponse) framing(c *h1Conn, minor int, isHead bool) error {
	r.Length, r.Chunked, r.NoBody = -1, false, false
	closing, keepAlive, te := false, false, false
	var cl []byte
	for _, f := range r.Fields {
		switch {
		case f.Is("Content-Length"):
			if cl != nil && !bytes.Equal(cl, f.Value) {
				return errors.New("malformed response: differing Content-Length values")
			}
			cl = f.Value
		case f.Is("Transfer-Encoding"):
			if te {
				return fmt.Errorf("malformed response: unsupported Transfer-Encoding %q", truncate(string(f.Value)))
			}
			te = true
			if minor > 0 && !EqualFold(TrimOWS(f.Value), "chunked") {
				return fmt.Errorf("malformed response: unsupported Transfer-Encoding %q", truncate(string(f.Value)))
			}
		case f.Is("Connection"):
			for tok := range bytes.SplitSeq(f.Value, []byte(",")) {
				switch tok = TrimOWS(tok); {
				case EqualFold(tok, "close"):
					closing = true
				case EqualFold(tok, "keep-alive"):
					keepAlive = true
				}
			}
		}
	}
	if cl != nil {
		n, err := strconv.ParseUint(string(cl), 10, 63)
		if err != nil || cl[0] == '+' {
			return fmt.Errorf("malformed response: Content-Length %q", truncate(string(cl)))
		}
		r.Length = int64(n)
	}
	r.keep = !(closing || minor == 0 && !keepAlive)
	switch {
	case te && minor == 0: // RFC 9112 6.1: faulty framing; read to the close
		r.Length, r.keep = -1, false
	case te:
		r.Chunked, r.Length = true, -1
	}
	code := r.Code
	if isHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		r.NoBody, r.Chunked = true, false
		if code == http.StatusNoContent || code < 200 {
			r.Length = -1
		}
		return nil
	}
	r.body = framedBody{br: c.br, left: r.Length}
	switch {
	case r.Chunked:
		r.Trailer = http.Header{}
		r.body.chunk = httputil.NewChunkedReader(c.br)
		r.body.resp = &http.Response{Trailer: r.Trailer}
	case r.Length == 0:
		r.NoBody = true
	case r.Length < 0:
		r.keep = false // the body ends with the connection
	}
	return nil
}
