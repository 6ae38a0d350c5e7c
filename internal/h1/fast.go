package h1

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime/debug"
)

// This file is the byte-level path of the server and the client, for a proxy that forwards the
// common request as it came instead of turning it into an http.Request and back: no header map,
// no per-field strings, no sorting. The server offers each request whose head is already whole in
// its buffer to Server.Fast first; a handler that declines gets the request through Handler as
// usual. The client side is Transport.Send (exchange.go).

// Field is one header field of a head parsed in place: its name as sent and its value without the
// white space around it, both pieces of a buffer that belongs to the connection.
type Field struct{ Name, Value []byte }

// Is reports whether the field's name is name, ignoring case (name is in canonical or lower case).
func (f Field) Is(name string) bool { return EqualFold(f.Name, name) }

// MaxFields bounds the header fields of a request the byte-level path takes (one with more is
// declined to Handler); a response's fields are kept in that many without allocating.
const MaxFields = 64

// FastHandler serves requests on the byte-level path (see Server.Fast).
type FastHandler interface {
	// ServeFast either serves the request of x and returns true, or returns false having written
	// nothing and sent nothing anywhere: the request then goes to Server.Handler.
	ServeFast(x *Exchange) bool
}

// Exchange is a request offered to a FastHandler: an HTTP/1.1 request without a body (no
// Transfer-Encoding, no Content-Length other than 0, no Expect) and with no Connection option but
// keep-alive, its head parsed in place, checked as strictly as Handler's requests are (a request
// the checks would refuse is not offered). The response is written to Writer; the server flushes it when ServeFast
// returns. An Exchange and everything it holds is reused for the connection's next request.
type Exchange struct {
	Method []byte
	Target []byte  // the request target as sent (origin form: it starts with '/')
	Host   []byte  // the Host field's value (there is exactly one)
	Fields []Field // every field of the head, Host included, in the order sent
	// State is the handler's own, kept across the connection's requests (the server never reads
	// it): a place for per-connection scratch space.
	State any

	c     *serverConn
	buf   []byte // the head, copied out of the connection's read buffer
	close bool
	arr   [MaxFields]Field
}

// Context is the request's context: it ends when the client closes the connection (noticed once
// the request has run a few milliseconds) or the server is closed.
func (x *Exchange) Context() context.Context { return x.c.tmpl.Context() }

// RemoteAddr is the client's address (host:port).
func (x *Exchange) RemoteAddr() string { return x.c.remote }

// Writer is where the response goes: the connection's buffered writer.
func (x *Exchange) Writer() *bufio.Writer { return x.c.bw }

// WriteBuffers writes what the writer holds, then bufs, at once where the connection allows
// (a vectored write): a head and a large first piece of body in one system call. Like
// net.Buffers, it may shorten the slices of bufs as they are written (never their bytes).
func (x *Exchange) WriteBuffers(bufs ...[]byte) error {
	c := x.c
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if bw, ok := c.io.(buffersWriter); ok && len(bufs) <= maxVec {
		_, err := bw.WriteBuffers(bufs)
		return err
	}
	v := net.Buffers(bufs)
	_, err := v.WriteTo(c.io)
	return err
}

// buffersWriter writes several buffers with one system call (sysConn).
type buffersWriter interface {
	WriteBuffers(bufs [][]byte) (int64, error)
}

// Accept takes the request off the connection: call it once the request is the handler's, before
// it is sent anywhere. Until then a client going away is not noticed (the head still sits where
// the server would look for it). ServeFast returning true accepts it too.
func (x *Exchange) Accept() {
	c := x.c
	c.watchMu.Lock()
	if c.fastHeld {
		_, _ = c.br.Discard(len(x.buf))
		c.fastHeld = false
	}
	c.watchMu.Unlock()
}

// CloseAfter closes the connection once the response is flushed: a response cut short (the client
// learns it from the close), or a server going down.
func (x *Exchange) CloseAfter() { x.close = true }

// ShuttingDown reports whether the server is shutting down: the response should say
// "Connection: close" (CloseAfter is then implied).
func (x *Exchange) ShuttingDown() bool { return x.c.srv.shutting.Load() }

// fastExchange returns the connection's next request as an Exchange when its whole head is in the
// read buffer and it qualifies (see Exchange), or nil.
func (c *serverConn) fastExchange() *Exchange {
	buffered, _ := c.br.Peek(c.br.Buffered())
	end := bytes.Index(buffered, crlf2)
	if end < 0 || end+4 > c.srv.maxHeader() {
		return nil
	}
	x := c.fx
	if x == nil {
		x = &Exchange{c: c}
		c.fx = x
	}
	x.buf = append(x.buf[:0], buffered[:end+4]...)
	if !x.parse() {
		return nil
	}
	return x
}

var crlf2 = []byte("\r\n\r\n")

// parse splits x.buf into the request line and fields; false means the request is left to the
// full parser (which answers what is malformed).
func (x *Exchange) parse() bool {
	b := x.buf
	nl := bytes.IndexByte(b, '\n')
	if nl < 1 || b[nl-1] != '\r' {
		return false
	}
	line := b[:nl-1]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || string(rest[sp2+1:]) != "HTTP/1.1" {
		return false
	}
	x.Method, x.Target = line[:sp1], rest[:sp2]
	if !isToken(x.Method) || !plainTarget(x.Target) {
		return false
	}
	fields, ok := parseFields(b[nl+1:], x.arr[:0])
	if !ok {
		return false
	}
	x.Fields, x.Host = fields, nil
	for _, f := range fields {
		switch {
		case f.Is("Host"):
			if x.Host != nil || !validHost(string(f.Value)) {
				return false
			}
			x.Host = f.Value
		case f.Is("Content-Length"):
			if string(f.Value) != "0" { // a body, or a length the full parser judges
				return false
			}
		case f.Is("Transfer-Encoding"), f.Is("Expect"):
			return false
		case f.Is("Connection"):
			if !EqualFold(f.Value, "keep-alive") {
				return false // close, upgrade, or fields to drop: the full path's to handle
			}
		}
	}
	x.close = false
	return x.Host != nil
}

// plainTarget reports whether a request target is an origin form that every parser reads alike:
// a path and query of visible ASCII without percent-escapes, fragments or white space. Anything
// else takes the full path, which normalizes it.
func plainTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '#' || c == '\\' {
			return false
		}
	}
	if q := bytes.IndexByte(t, '?'); q >= 0 && bytes.IndexByte(t[q:], ';') >= 0 {
		return false
	}
	return true
}

// parseFields parses the field lines of b, which ends with the empty line, into dst: each line
// "name: value" with CRLF, a token name and a value without control characters. False when a line
// breaks these rules, is folded, or there are more than MaxFields.
func parseFields(b []byte, dst []Field) ([]Field, bool) {
	for {
		nl := bytes.IndexByte(b, '\n')
		if nl < 1 || b[nl-1] != '\r' {
			return nil, false
		}
		line := b[:nl-1]
		b = b[nl+1:]
		if len(line) == 0 {
			return dst, len(b) == 0
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) || len(dst) == MaxFields {
			return nil, false
		}
		v := TrimOWS(line[colon+1:])
		for _, c := range v {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return nil, false
			}
		}
		dst = append(dst, Field{Name: line[:colon], Value: v})
	}
}

// TrimOWS drops the optional white space (spaces and tabs, RFC 9110 5.6.3) around a field value
// or list element. Unlike strings.TrimSpace it leaves every other byte alone: a Unicode space is
// part of the value, as the other parsers on the path see it.
func TrimOWS[T string | []byte](b T) T {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// EqualFold reports whether a and b are equal ignoring ASCII case only: strings.EqualFold also
// matches Unicode foldings (the Kelvin sign for K), which would let herd read a framing field that
// the other HTTP parsers on the path refuse.
func EqualFold[A, B string | []byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// serveFast offers the buffered request to Server.Fast; served reports whether it took it, and
// keep whether the connection may carry another request.
func (c *serverConn) serveFast() (served, keep bool) {
	x := c.fastExchange()
	if x == nil {
		return false, false
	}
	return c.serveExchange(x)
}

// serveExchange is serveFast for the request x.
func (c *serverConn) serveExchange(x *Exchange) (served, keep bool) {
	c.beginWatch(nil, true)
	served, ok := c.runFast(x)
	c.stopWatch()
	if !served {
		c.watchMu.Lock()
		held := c.fastHeld
		c.fastHeld = false
		c.watchMu.Unlock()
		if !held { // accepted, then declined: the head is gone, and so is the request
			return true, false
		}
		return false, false
	}
	x.Accept()
	return true, ok && !x.close && !c.srv.shutting.Load()
}

// runFast calls the fast handler; ok is false when it panicked (the connection then closes).
func (c *serverConn) runFast(x *Exchange) (served, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			served, ok = true, false
			c.bw.Reset(c.io) // a partial answer is dropped, as on the full path: the client sees the close
			if v != http.ErrAbortHandler {
				c.srv.logger().Error("http handler panicked", "event", "http.handler_panic", "remote", c.remote,
					"uri", string(x.Target), "panic", v, "stack", string(debug.Stack()))
			}
		}
	}()
	return c.srv.Fast.ServeFast(x), true
}
