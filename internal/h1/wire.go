package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
)

// This file holds the HTTP/1.x wire format shared by the server (requests) and the client
// (responses): lines, header fields and the response head.

// readLine returns the next line without its line end (CRLF or LF), counting it against *budget.
// The slice is valid until the next read from br. A line longer than br's buffer is gathered in
// *scratch.
func readLine(br *bufio.Reader, budget *int, scratch *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) { // longer than the buffer: gather it
		buf := append((*scratch)[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(buf) <= *budget {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		*scratch, line = buf, buf
	}
	*budget -= len(line)
	if *budget < 0 {
		return nil, &httpError{status: http.StatusRequestHeaderFieldsTooLarge, msg: "request head too large"}
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readFields reads header fields up to the empty line into h. Obsolete line folding is refused,
// unless fold is set (responses: the continuation joins the previous value with a space, as RFC 9112
// 5.2 lets a recipient do). When the whole field section is already buffered (the usual case) it is
// turned into one string and every value is a piece of it; otherwise each line costs a string.
// Single-valued fields share one backing array.
func readFields(br *bufio.Reader, budget *int, scratch *[]byte, h http.Header, fold bool) error {
	f := fieldSet{h: h, vals: make([]string, 0, 12), fold: fold}
	if block, ok := bufferedSection(br, budget); ok {
		for block != "" {
			line, rest, _ := strings.Cut(block, "\n")
			block = rest
			if err := f.add(strings.TrimSuffix(line, "\r")); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		line, err := readLine(br, budget, scratch)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if err := f.add(string(line)); err != nil {
			return err
		}
	}
}

// bufferedSection returns the field section (without the empty line that ends it) when it is
// already in br's buffer and within *budget, and consumes it from br.
func bufferedSection(br *bufio.Reader, budget *int) (string, bool) {
	buf, _ := br.Peek(br.Buffered())
	for pos := 0; ; {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			return "", false
		}
		line := buf[pos : pos+i]
		next := pos + i + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			if next > *budget {
				return "", false // too large: the line-by-line path reports it
			}
			*budget -= next
			block := string(buf[:pos])
			_, _ = br.Discard(next)
			return block, true
		}
		pos = next
	}
}

// fieldSet collects header fields into h.
type fieldSet struct {
	h    http.Header
	vals []string
	last string // key of the previous field, for a folded continuation
	fold bool
}

// add checks one field line (without its line end) and adds it.
func (f *fieldSet) add(line string) error {
	h := f.h
	if line[0] == ' ' || line[0] == '\t' {
		vv := h[f.last]
		if !f.fold || len(vv) == 0 {
			return badRequest("obsolete line folding in the head")
		}
		if value := TrimOWS(line); validValue(value) {
			vv[len(vv)-1] += " " + value
			return nil
		}
		return badRequest("invalid character in header %q", truncate(f.last))
	}
	i := strings.IndexByte(line, ':')
	if i <= 0 || !isToken(line[:i]) {
		return badRequest("malformed header line %q", truncate(line))
	}
	v := TrimOWS(line[i+1:])
	if !validValue(v) {
		return badRequest("invalid character in header %q", truncate(line[:i]))
	}
	key := canonicalKey(line[:i])
	f.last = key
	if prior, ok := h[key]; ok || len(f.vals) == cap(f.vals) {
		h[key] = append(prior, v)
		return nil
	}
	f.vals = append(f.vals, v)
	n := len(f.vals)
	h[key] = f.vals[n-1 : n : n]
	return nil
}

// readResponse reads a response head for req from br and sets up its body, like http.ReadResponse
// with fewer allocations. The head is bounded by maxResponseHead.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	budget := maxResponseHead
	var scratch []byte
	line, err := readLine(br, &budget, &scratch)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err // nothing at all: the peer closed (a stale pooled connection)
		}
		return nil, fmt.Errorf("reading the response's status line: %w", err)
	}
	proto, status, ok := strings.Cut(string(line), " ")
	code, reason, _ := strings.Cut(status, " ")
	resp := &http.Response{Proto: proto, Status: status, Request: req, Header: make(http.Header, 12)}
	minor, known := protoMinor(proto)
	resp.ProtoMajor, resp.ProtoMinor = 1, minor
	ok = ok && known
	n, cerr := strconv.Atoi(code)
	if !ok || len(code) != 3 || cerr != nil || n < 100 {
		return nil, fmt.Errorf("malformed status line %q", truncate(string(line)))
	}
	resp.StatusCode = n
	if reason == "" {
		resp.Status = code + " " + http.StatusText(n)
	}
	if err := readFields(br, &budget, &scratch, resp.Header, true); err != nil {
		if he, ok := err.(*httpError); ok {
			return nil, errors.New("malformed response: " + he.msg)
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading the response head: %w", err)
	}
	if err := responseFraming(br, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// newlineToSpace keeps a header value written by herd on its one line.
var newlineToSpace = strings.NewReplacer("\r", " ", "\n", " ")

// maxResponseHead bounds a response's status line and header fields.
const maxResponseHead = 1 << 20

// responseFraming decides where the response body ends (RFC 9112 6.3) and sets resp.Body.
func responseFraming(br *bufio.Reader, req *http.Request, resp *http.Response) error {
	h := resp.Header
	resp.Close = closeRequested(resp.ProtoMinor, h["Connection"])
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	length := int64(-1)
	if len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return errors.New("malformed response: differing Content-Length values")
			}
		}
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil || cl[0][0] == '+' {
			return fmt.Errorf("malformed response: Content-Length %q", truncate(cl[0]))
		}
		length = int64(n)
	}
	chunked := false
	if len(te) > 0 && resp.ProtoMinor == 0 { // RFC 9112 6.1: faulty framing; read to the close
		delete(h, "Transfer-Encoding")
		length, resp.Close = -1, true
	} else if len(te) > 0 {
		codings := strings.Split(strings.Join(te, ","), ",")
		if !EqualFold(TrimOWS(codings[len(codings)-1]), "chunked") || len(codings) > 1 {
			return fmt.Errorf("malformed response: unsupported Transfer-Encoding %q", truncate(strings.Join(te, ", ")))
		}
		chunked = true
		delete(h, "Transfer-Encoding")
		delete(h, "Content-Length") // chunked wins (RFC 9112 6.3)
		resp.TransferEncoding = []string{"chunked"}
	}
	for _, v := range h["Trailer"] { // announced trailer fields: filled when the body ends
		for k := range strings.SplitSeq(v, ",") {
			if k = textproto.TrimString(k); k != "" {
				if resp.Trailer == nil {
					resp.Trailer = http.Header{}
				}
				resp.Trailer[http.CanonicalHeaderKey(k)] = nil
			}
		}
	}
	code := resp.StatusCode
	if req.Method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		resp.ContentLength, resp.Body = 0, http.NoBody
		if req.Method == http.MethodHead || code == http.StatusNotModified {
			resp.ContentLength = length
		}
		if code == http.StatusNoContent || code < 200 {
			resp.ContentLength = 0
		}
		return nil
	}
	switch {
	case chunked:
		resp.ContentLength = -1
		resp.Body = &respBody{framedBody{br: br, chunk: httputil.NewChunkedReader(br), resp: resp}}
	case length == 0:
		resp.ContentLength, resp.Body = 0, http.NoBody
	case length > 0:
		resp.ContentLength = length
		resp.Body = &respBody{framedBody{br: br, left: length}}
	default: // the body ends when the connection does
		resp.ContentLength, resp.Close = -1, true
		resp.Body = &respBody{framedBody{br: br, left: -1}}
	}
	return nil
}

// framedBody is a message body read from a connection, request or response: chunked (chunk is its
// decoder), Content-Length bytes, or up to EOF (left < 0).
type framedBody struct {
	br    *bufio.Reader
	chunk io.Reader      // chunked decoder; nil when the body has a length or ends at EOF
	left  int64          // bytes left, when not chunked; < 0: until EOF
	resp  *http.Response // gets the trailer of a chunked response (nil: a request's is dropped)
	eof   bool
	err   error // sticky
}

// next reads the next bytes, remembering the end or the first error.
func (b *framedBody) next(p []byte) (int, error) {
	switch {
	case b.err != nil:
		return 0, b.err
	case b.eof:
		return 0, io.EOF
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// read reads by the body's framing; at the last chunk it consumes the trailer section.
func (b *framedBody) read(p []byte) (int, error) {
	switch {
	case b.chunk != nil:
		n, err := b.chunk.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
		}
		return n, err
	case b.left < 0:
		return b.br.Read(p)
	}
	return readLength(b.br, p, &b.left)
}

// readTrailer reads the trailer section after the last chunk, into resp.Trailer for a response.
func (b *framedBody) readTrailer() error {
	t, err := readTrailer(b.br)
	if err != nil || b.resp == nil || len(t) == 0 {
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header{}
	}
	for k, vv := range t {
		b.resp.Trailer[k] = vv
	}
	return nil
}

// respBody is a response body; reading it to its end is the caller's way to keep the connection.
type respBody struct{ framedBody }

func (b *respBody) Read(p []byte) (int, error) { return b.next(p) }

// readLength reads from a body of *left more bytes: io.EOF once they are read, and
// io.ErrUnexpectedEOF when the connection ends before.
func readLength(br *bufio.Reader, p []byte, left *int64) (int, error) {
	if *left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > *left {
		p = p[:*left]
	}
	n, err := br.Read(p)
	*left -= int64(n)
	switch {
	case *left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// readTrailer reads the trailer section that follows the last chunk of a chunked body.
func readTrailer(br *bufio.Reader) (http.Header, error) {
	budget := maxTrailerBytes
	var scratch []byte
	t := http.Header{}
	if err := readFields(br, &budget, &scratch, t, false); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading the trailer: %w", err)
	}
	return t, nil
}

// Close ends the body; the caller decides whether the connection can be reused (it reads to EOF
// first for that).
func (b *respBody) Close() error {
	if !b.eof && b.err == nil {
		b.err = errors.New("h1: read on closed response body")
	}
	return nil
}

// isToken reports whether s is a non-empty RFC 9110 token (method, header name).
func isToken[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validValue reports whether a field value has no control characters other than horizontal tab.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether a Host value is plausible: no white space, controls or delimiters a
// host cannot contain.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if b := h[i]; b <= ' ' || b == 0x7f || strings.IndexByte(`"<>\^`+"`{|}/", b) >= 0 {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// commonKeys maps header names as clients send them (canonical or lower case) to their canonical
// form, so that the usual names cost no allocation.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date",
		"Dnt", "Expect", "Forwarded", "Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Keep-Alive", "Origin", "Pragma", "Priority", "Range", "Referer",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Websocket-Extensions",
		"Sec-Websocket-Key", "Sec-Websocket-Protocol", "Sec-Websocket-Version", "Te", "Trailer",
		"Traceparent", "Tracestate", "Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests",
		"User-Agent", "Via", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Spanid", "X-B3-Traceid",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"X-Requested-With", "Idempotency-Key", "X-Herd-Node"} {
		m[k], m[strings.ToLower(k)] = k, k
	}
	return m
}()

// canonicalKey returns the canonical form of a header name (already checked to be a token).
func canonicalKey(name string) string {
	if k, ok := commonKeys[name]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(name) // name itself when it is canonical already
}

// protoMinor is the minor version of "HTTP/1.1" (1) or "HTTP/1.0" (0); known is false for any
// other protocol string.
func protoMinor(proto string) (minor int, known bool) {
	switch proto {
	case "HTTP/1.1":
		return 1, true
	case "HTTP/1.0":
		return 0, true
	}
	return 0, false
}
