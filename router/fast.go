package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herdproject/herd/internal/h1"
)

// The fast path: the common request (GET or HEAD over plain HTTP/1.1, no body, no upgrade, an
// ordinary target, at most h1.MaxFields fields) is forwarded as the bytes it came in, with the
// router's fields edited in, and the node's answer goes back the same way. It does what ServeHTTP
// and forward do (same selection, retries, fields, metrics and access log) without an
// http.Request, header maps or per-field strings: on a small proxied request those cost about a
// third of the router's CPU time. Everything else (bodies, upgrades, Expect, TE, odd targets, the
// metrics path) is declined before anything is sent and served by ServeHTTP.

// fastConn is the fast path's scratch space for one client connection (h1.Exchange.State).
type fastConn struct {
	r       *Router
	x       *h1.Exchange
	st      reqState
	out     []byte   // the outgoing head
	hop     [][]byte // field names the node's Connection field lists
	rh      []byte   // the head of the answer to the client
	interim func(int, []h1.Field) error
	abort   *h1.Abort
	metrics metricCache
	isHead  bool // the request in progress is a HEAD

	knownTable *Table // the table that had knownRoute: a session cookie's route found there before
	knownRoute string
}

// field kinds the fast path looks at in a request.
const (
	kindOther = iota
	kindDrop  // hop-by-hop or rewritten by the router: not forwarded
	kindDecline
	kindCookie
	kindXFF
	kindRequestID
	kindTraceparent
	kindTracestate
	kindB3
	kindB3Trace
	kindB3Span
	kindB3Sampled
	kindB3Flags
	kindPin
)

// lowerName copies a field name into buf in lower case; nil when it is longer than buf (no name
// the fast path looks for is).
func lowerName(buf *[32]byte, name []byte) []byte {
	if len(name) > len(buf) {
		return nil
	}
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return lower
}

// requestKind classifies a request field by its name. The exchange offered no field that frames a
// body or expects anything (h1.Exchange), and a Connection field that says keep-alive at most:
// Connection and a zero Content-Length are only dropped here.
func (r *Router) requestKind(name []byte) int {
	var buf [32]byte
	lower := lowerName(&buf, name)
	if lower == nil {
		if h1.EqualFold(name, r.pinLower) {
			return kindPin
		}
		return kindOther
	}
	switch string(lower) {
	case "cookie":
		return kindCookie
	case "x-forwarded-for":
		return kindXFF
	case "x-forwarded-host", "x-forwarded-proto", "forwarded", "keep-alive", "proxy-connection",
		"proxy-authorization", "proxy-authenticate", "trailer", "x-b3-parentspanid", "connection",
		"content-length":
		return kindDrop
	case "upgrade", "te":
		return kindDecline
	case "x-request-id":
		return kindRequestID
	case "traceparent":
		return kindTraceparent
	case "tracestate":
		return kindTracestate
	case "b3":
		return kindB3
	case "x-b3-traceid":
		return kindB3Trace
	case "x-b3-spanid":
		return kindB3Span
	case "x-b3-sampled":
		return kindB3Sampled
	case "x-b3-flags":
		return kindB3Flags
	case r.pinLower:
		return kindPin
	}
	return kindOther
}

// ServeFast implements h1.FastHandler (see the comment at the top of this file).
func (r *Router) ServeFast(x *h1.Exchange) bool {
	isHead := false
	switch string(x.Method) {
	case http.MethodGet:
	case http.MethodHead:
		isHead = true
	default:
		return false
	}
	target := x.Target
	path := target
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path = target[:q]
	}
	if string(path) == r.opts.MetricsPath {
		return false
	}
	var kinds [h1.MaxFields]uint8
	var in traceIn
	var seen uint8 // trace fields met: the first of each name counts, even when empty
	var idIn, pin []byte
	nxff := 0
	for i, f := range x.Fields {
		k := r.requestKind(f.Name)
		switch k {
		case kindDecline:
			return false
		case kindXFF:
			nxff++
		case kindRequestID:
			if idIn == nil {
				idIn = f.Value
			}
		case kindPin:
			if pin == nil {
				pin = f.Value
			}
		case kindTraceparent:
			setOnce(&seen, 0, &in.traceparent, f.Value)
		case kindB3:
			setOnce(&seen, 1, &in.b3, f.Value)
		case kindB3Trace:
			setOnce(&seen, 2, &in.b3Trace, f.Value)
		case kindB3Span:
			setOnce(&seen, 3, &in.b3Span, f.Value)
		case kindB3Sampled:
			setOnce(&seen, 4, &in.b3Sampled, f.Value)
		case kindB3Flags:
			setOnce(&seen, 5, &in.b3Flags, f.Value)
		}
		kinds[i] = uint8(k)
	}
	x.Accept()
	r.fastServed.Add(1)

	fc, _ := x.State.(*fastConn)
	if fc == nil {
		fc = &fastConn{r: r, x: x, abort: h1.NewAbort()}
		fc.interim = fc.relayInterim
		// One hook per connection ends a request in flight when the client goes away (the
		// connection's context ends then), instead of one registered and removed per request.
		context.AfterFunc(x.Context(), fc.abort.Fire)
		x.State = fc
	}
	r.active.Add(1)
	defer r.active.Add(-1)
	start := time.Now()
	now := start
	if !r.realClock {
		now = r.now()
	}
	t := r.table.Load()
	fc.st = reqState{start: now, trace: newTrace(in), metrics: &fc.metrics}
	st := &fc.st
	defer r.metrics.requestCached(st, start, &fc.metrics)
	st.id = st.trace.traceID
	if idIn != nil {
		st.id = requestID(string(idIn), st.trace.traceID)
	}
	st.pool = Pool{table: t, now: now, drain: r.run.Load().settings.DrainTimeout, routes: t.match(string(path))}
	st.cookie = r.cookieFor(st.pool.routes)
	var cs cookieScan
	known := func(route string) bool {
		if t == fc.knownTable && route == fc.knownRoute { // a connection's requests mostly share one
			return true
		}
		if t.byRoute[route] == nil {
			return false
		}
		fc.knownTable, fc.knownRoute = t, route
		return true
	}
	for i, f := range x.Fields {
		if kinds[i] == kindCookie && scanCookies(&cs, f.Value, st.cookie, known) {
			break
		}
	}
	st.pool.SessionID, st.pool.Route = cs.id, cs.route
	if st.pool.SessionID != "" && st.pool.routes != nil && st.pool.routes.multi() {
		st.pool.Version = r.memo.get(st.pool.SessionID)
	}
	if pin != nil {
		st.pool.Pin = strings.TrimSpace(string(pin)) // as the full path does (Unicode spaces too)
	}
	fc.isHead = isHead
	head := fc.buildHead(x, kinds[:len(x.Fields)], nxff)
	sent, status := fc.exchange(head, isHead)
	if r.opts.AccessLog != nil {
		r.logLine(x.RemoteAddr(), string(x.Method), string(x.Target), "HTTP/1.1", status, sent, st)
	}
	return true
}

// setOnce sets *s to v for the first field of a name (bit of seen), as Header.Get reads the first.
func setOnce(seen *uint8, bit uint, s *string, v []byte) {
	if *seen&(1<<bit) == 0 {
		*seen |= 1 << bit
		*s = string(v)
	}
}

// buildHead writes the outgoing request head: the request line, the client's fields without the
// hop-by-hop and rewritten ones, then the forwarding, request id and trace fields, as rewrite and
// trace.apply set them on the full path.
func (fc *fastConn) buildHead(x *h1.Exchange, kinds []uint8, nxff int) []byte {
	r, st := fc.r, &fc.st
	b := append(fc.out[:0], x.Method...)
	b = append(b, ' ')
	b = append(b, x.Target...)
	b = append(b, " HTTP/1.1\r\n"...)
	for i, f := range x.Fields {
		switch kinds[i] {
		case kindOther, kindCookie:
		case kindTracestate:
			if !st.trace.keepState {
				continue
			}
		default:
			continue
		}
		b = appendField(b, f.Name, f.Value)
	}
	client, _, err := net.SplitHostPort(x.RemoteAddr())
	if err == nil {
		b = append(b, "X-Forwarded-For: "...)
		if r.opts.TrustForwarded && nxff > 0 {
			for i, f := range x.Fields {
				if kinds[i] == kindXFF {
					b = append(b, f.Value...)
					b = append(b, ", "...)
				}
			}
		}
		b = append(b, client...)
		b = append(b, "\r\n"...)
	}
	b = appendField(b, []byte("X-Forwarded-Host"), x.Host)
	b = append(b, "X-Forwarded-Proto: http\r\n"...)
	b = append(b, "X-Request-Id: "...)
	b = append(b, st.id...)
	t := &st.trace
	flags, sampled := "00", "0"
	if t.sampled {
		flags, sampled = "01", "1"
	}
	b = append(b, "\r\nTraceparent: 00-"...)
	b = append(b, t.traceID...)
	b = append(b, '-')
	b = append(b, t.span...)
	b = append(b, '-')
	b = append(b, flags...)
	b = append(b, "\r\nX-B3-Traceid: "...)
	b = append(b, t.b3TraceID...)
	b = append(b, "\r\nX-B3-Spanid: "...)
	b = append(b, t.span...)
	if t.parent != "" {
		b = append(b, "\r\nX-B3-Parentspanid: "...)
		b = append(b, t.parent...)
	}
	b = append(b, "\r\nX-B3-Sampled: "...)
	b = append(b, sampled...)
	b = append(b, "\r\n\r\n"...)
	fc.out = b
	return b
}

func appendField(b, name, value []byte) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// exchange sends head to the node the selector picks, retrying as the rule allows, and relays the
// answer to the client; it returns the body bytes sent and the status (for the access log).
func (fc *fastConn) exchange(head []byte, isHead bool) (int64, int) {
	r, st, x := fc.r, &fc.st, fc.x
	ctx := x.Context()
	run := r.run.Load()
	var resp *h1.RawResponse
	err := roundTripper{r}.attempts(run, st, nil, func(b *Backend) (err error) {
		b.state.inflight.Add(1)
		resp, err = run.transport.Send(ctx, fc.abort, b.Addr, head, isHead, fc.interim)
		if err != nil {
			b.state.inflight.Add(-1)
		}
		return err
	}, func(err error) (retry, mark bool, status int) {
		return classify(err, ctx.Err() != nil, false, always)
	})
	if err == nil && resp.Code == http.StatusSwitchingProtocols {
		resp.Close()
		st.backend.state.inflight.Add(-1)
		err = errors.New("node switched protocols when the request asked for no switch")
	}
	if err != nil {
		return fc.fail(err)
	}
	defer st.backend.state.inflight.Add(-1)
	code := resp.Code
	st.status = code
	switch { // the access log's figure: the clock is not read for nothing
	case r.opts.AccessLog == nil:
	case r.realClock:
		st.header = time.Since(st.start)
	default:
		st.header = r.now().Sub(st.start)
	}
	return fc.relay(resp), code
}

func always() bool { return true }

// relayBufs lend the buffers a fast answer's body is copied through: 64 KiB, so that a body of that
// size that did not come with the head takes one read and one write.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// fail answers a request that could not be proxied, as Router.fail does; it returns the size of
// the message and the status (for the access log).
func (fc *fastConn) fail(err error) (int64, int) {
	st, x := &fc.st, fc.x
	status, msg := failure(st, err)
	if status == statusClientClosed {
		x.CloseAfter() // nobody is listening
		return 0, status
	}
	b := appendStatusLine(fc.rh[:0], status)
	b = append(b, "Cache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nDate: "...)
	b = append(b, h1.Date()...)
	if status == http.StatusServiceUnavailable {
		b = append(b, "\r\nRetry-After: 1"...)
	}
	b = append(b, "\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: "...)
	b = append(b, st.id...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = fc.endHead(b)
	if !fc.isHead { // a HEAD's answer has no body, only the length the GET's would have
		b = append(b, msg...)
	}
	fc.rh = b
	_, _ = x.Writer().Write(b)
	return int64(len(msg)), status
}

// endHead ends a response head, closing the connection after it when the server is going down.
func (fc *fastConn) endHead(b []byte) []byte {
	if fc.x.ShuttingDown() {
		b = append(b, "\r\nConnection: close"...)
		fc.x.CloseAfter()
	}
	return append(b, "\r\n\r\n"...)
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, "\r\n"...)
}

// responseKind classifies a response field for the client: 0 to pass on, 1 to drop (hop-by-hop, or
// written by the router), 2 for Set-Cookie (passed on, and learnt from), 3 for Date (passed on).
func (fc *fastConn) responseKind(name []byte) int {
	for _, h := range fc.hop { // what the node's Connection field lists goes first, whatever it is
		if h1.EqualFold(h, name) {
			return 1
		}
	}
	var buf [32]byte
	if lower := lowerName(&buf, name); lower != nil {
		switch string(lower) {
		case "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
			"te", "transfer-encoding", "upgrade", "content-length", "x-request-id":
			return 1
		case "set-cookie":
			return 2
		case "date":
			return 3
		}
	}
	return 0
}

// collectHop notes the field names the node's Connection fields list (hop-by-hop by its word).
func (fc *fastConn) collectHop(fields []h1.Field) {
	fc.hop = fc.hop[:0]
	for _, f := range fields {
		if !h1.EqualFold(f.Name, "connection") {
			continue
		}
		for tok := range bytes.SplitSeq(f.Value, []byte(",")) {
			if tok = bytes.TrimSpace(tok); len(tok) > 0 {
				fc.hop = append(fc.hop, tok)
			}
		}
	}
}

// appendFields appends the fields of a node's answer that go on to the client; date reports
// whether a Date field was among them.
func (fc *fastConn) appendFields(b []byte, fields []h1.Field, learn bool) (_ []byte, date bool) {
	fc.collectHop(fields)
	for _, f := range fields {
		switch fc.responseKind(f.Name) {
		case 1:
			continue
		case 2:
			if learn && fc.st.backend != nil {
				if id, route, ok := setCookieSession(string(f.Value), fc.st.cookie); ok {
					fc.r.learn(&fc.st, id, route)
				}
			}
		case 3:
			date = true
		}
		b = appendField(b, f.Name, f.Value)
	}
	return b, date
}

// relayInterim passes a node's interim answer (103 Early Hints, 102 Processing) on to the client.
func (fc *fastConn) relayInterim(code int, fields []h1.Field) error {
	b := appendStatusLine(fc.rh[:0], code)
	b, _ = fc.appendFields(b, fields, false)
	b = append(b, "\r\n"...)
	fc.rh = b
	bw := fc.x.Writer()
	_, _ = bw.Write(b)
	if bw.Flush() != nil {
		// The client is gone: that is no failure of the node's, whose answer is read to its end
		// (the writes of the final answer fail the same way and close the connection).
		fc.x.CloseAfter()
	}
	return nil
}

// relay sends the node's answer to the client: the head with the router's edits, then the body,
// with its length when the node gave one and chunked otherwise (the client spoke HTTP/1.1); it
// returns the body bytes sent. A body that breaks off closes the client's connection, its only way
// to learn that the answer is incomplete.
func (fc *fastConn) relay(resp *h1.RawResponse) int64 {
	defer resp.Close()
	x, st := fc.x, &fc.st
	b := appendStatusLine(fc.rh[:0], resp.Code)
	eventStream := false
	for _, f := range resp.Fields {
		if h1.EqualFold(f.Name, "content-type") { // the first one counts, as Header.Get reads it
			media, _, _ := bytes.Cut(f.Value, []byte(";"))
			eventStream = h1.EqualFold(bytes.TrimSpace(media), "text/event-stream")
			break
		}
	}
	b, date := fc.appendFields(b, resp.Fields, true)
	if !date {
		b = append(b, "Date: "...)
		b = append(b, h1.Date()...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Request-Id: "...)
	b = append(b, st.id...)
	chunked := false
	switch {
	case resp.NoBody && resp.Length < 0:
	case resp.NoBody || resp.Length >= 0:
		b = append(b, "\r\nContent-Length: "...)
		b = strconv.AppendInt(b, resp.Length, 10)
	default:
		chunked = true
		b = append(b, "\r\nTransfer-Encoding: chunked"...)
	}
	b = fc.endHead(b)
	fc.rh = b
	bw := x.Writer()
	if resp.NoBody {
		_, _ = bw.Write(b)
		return 0
	}
	head := b // written with the first piece of the body
	// put sends a piece of the body, the head first if it is still waiting: chunked and flushed
	// when the client gets chunks, in one vectored write with the head when both are large.
	put := func(p []byte) error {
		h := head
		head = nil
		switch {
		case chunked:
			_, _ = bw.Write(h)
			if len(p) > 0 {
				_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
				_, _ = bw.WriteString("\r\n")
				_, _ = bw.Write(p)
				_, _ = bw.WriteString("\r\n")
			}
			return bw.Flush()
		case h != nil && len(h)+len(p) > bw.Available():
			return x.WriteBuffers(h, p)
		}
		_, _ = bw.Write(h)
		_, err := bw.Write(p)
		if err == nil && eventStream {
			err = bw.Flush()
		}
		return err
	}
	var sent int64
	if first := resp.Buffered(); len(first) > 0 && !chunked {
		// What already came with the head goes on from the connection's buffer, without a copy.
		err := put(first)
		resp.Consume(len(first))
		if err != nil {
			x.CloseAfter()
			return sent
		}
		sent += int64(len(first))
	}
	if head == nil && resp.Ended() {
		return sent
	}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Read(buf)
		if n > 0 || head != nil {
			if put(buf[:n]) != nil {
				x.CloseAfter()
				return sent
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			fc.r.log.Debug("node's body broke off", "event", "router.body_error", "err", rerr)
			x.CloseAfter()
			return sent
		}
	}
	if chunked {
		_, _ = bw.WriteString("0\r\n")
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				_, _ = bw.WriteString(k + ": " + v + "\r\n")
			}
		}
		_, _ = bw.WriteString("\r\n")
	}
	return sent
}
