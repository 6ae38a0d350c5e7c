package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
)

// fuzzStrict (H1_FUZZ_STRICT=1) makes the differential fuzzers fail on every disagreement,
// including the ones known and accepted (listed where they are tolerated), to survey them.
var fuzzStrict = os.Getenv("H1_FUZZ_STRICT") != ""

// FuzzFastRequestHead checks the fast path's request parser (fastExchange) against the full one
// (readRequest) on the same bytes: whatever the fast path offers, the full parser reads alike
// (method, target, Host, every field's values in order, no body) and it ends at the same byte.
// Requests follow each other on one connection as long as the fast path takes them, so the
// Exchange's reuse is covered too.
func FuzzFastRequestHead(f *testing.F) {
	long := strings.Repeat("v", 3000)
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
		"HEAD /x HTTP/1.1\r\nhost: h\r\nX-A: 1\r\nx-a: 2\r\nX-A:3\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h2\r\nX: y\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: h3\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-F: a\r\n b\r\n\r\n",  // folded
		"GET / HTTP/1.1\r\nHost: h\r\nX-F: a\r\n\tb\r\n\r\n", // folded with a tab
		"GET / HTTP/1.1\nHost: h\n\n",                        // bare LF
		"GET / HTTP/1.1\r\nHost: h\n\r\n",                    // mixed
		"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",       // two Hosts
		"GET / HTTP/1.1\r\nX: y\r\n\r\n",                     // no Host
		"GET / HTTP/1.1\r\nHost:\r\n\r\n",                    // empty Host
		"GET / HTTP/1.0\r\nHost: h\r\n\r\n",                  // HTTP/1.0
		"GET * HTTP/1.1\r\nHost: h\r\n\r\n",                  // odd targets
		"GET //x//y/../z HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a?b;c HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a;b?c HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /\"<>^`{|} HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n", // NUL bytes
		"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-N: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX\x00: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-V:  \t spaced \t \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-V: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-V: caf\xc3\xa9 \xff\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-F: v\r\n", MaxFields-1) + "\r\n", // 64 fields
		"GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-F: v\r\n", MaxFields) + "\r\n",   // 65
		"GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + long + "\r\n\r\n",                          // long heads
		"GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + long + long + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(0))
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n"), uint16(len("GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n")))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n"), uint16(len("GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n")-1))
	f.Fuzz(func(t *testing.T, data []byte, maxHeader uint16) {
		if msg := checkFastRequests(data, int(maxHeader)); msg != "" {
			t.Fatal(msg)
		}
	})
}

// checkFastRequests runs the fast and the full parser over data side by side; it returns what
// they disagree on, or "".
func checkFastRequests(data []byte, maxHeader int) string {
	fc, fr := newParseConn(data, maxHeader)
	uc, ur := newParseConn(data, maxHeader)
	off := 0
	for i := 0; i < 8; i++ {
		if _, err := fc.br.Peek(1); err != nil {
			return ""
		}
		x := fc.fastExchange()
		if x == nil {
			return "" // declined: the full parser answers it (FuzzServerRequest's business)
		}
		known := knownGap(x)
		if msg := checkExchange(x); msg != "" {
			return fmt.Sprintf("request %d of %q: %s", i, data, msg)
		}
		req, _, err := uc.readRequest()
		if err != nil {
			if known {
				return ""
			}
			return fmt.Sprintf("request %d of %q: the fast path offers it, readRequest refuses it: %v", i, data, err)
		}
		if req.Body != http.NoBody || req.ContentLength != 0 {
			if known {
				return ""
			}
			return fmt.Sprintf("request %d of %q: offered without a body, readRequest reads a body (length %d)", i, data, req.ContentLength)
		}
		acceptFast(x)
		off += len(x.buf)
		if a, b := consumed(fc, fr, data), consumed(uc, ur, data); a != off || b != off {
			return fmt.Sprintf("request %d of %q: the head ends at %d for the fast path, at %d for readRequest", i, data, a, b)
		}
		if string(x.Method) != req.Method || string(x.Target) != req.RequestURI || string(x.Host) != req.Host {
			return fmt.Sprintf("request %d of %q:\nfast: %q %q host=%q\nfull: %q %q host=%q", i, data,
				x.Method, x.Target, x.Host, req.Method, req.RequestURI, req.Host)
		}
		fast := fieldMap(x.Fields)
		delete(fast, "Host") // readRequest moves it to req.Host
		if cl := fast["Content-Length"]; len(cl) > 1 && allSame(cl) {
			fast["Content-Length"] = cl[:1] // readRequest keeps one of equal values
		}
		if !reflect.DeepEqual(fast, map[string][]string(req.Header)) {
			if known {
				return "" // readRequest drops Expect and Transfer-Encoding
			}
			return fmt.Sprintf("request %d of %q: fields\nfast: %q\nfull: %q", i, data, fast, req.Header)
		}
	}
	return ""
}

// checkExchange checks what an offered Exchange promises on its own.
func checkExchange(x *Exchange) string {
	switch {
	case len(x.Target) == 0 || x.Target[0] != '/':
		return fmt.Sprintf("target %q is not in origin form", x.Target)
	case len(x.Fields) > MaxFields:
		return fmt.Sprintf("%d fields", len(x.Fields))
	case !isToken(x.Method):
		return fmt.Sprintf("method %q", x.Method)
	}
	hosts := 0
	for _, f := range x.Fields {
		if !isToken(f.Name) || !validValue(string(f.Value)) {
			return fmt.Sprintf("field %q: %q", f.Name, f.Value)
		}
		if len(f.Value) > 0 && (f.Value[0] == ' ' || f.Value[0] == '\t' || f.Value[len(f.Value)-1] == ' ' || f.Value[len(f.Value)-1] == '\t') {
			return fmt.Sprintf("field %q: white space kept around %q", f.Name, f.Value)
		}
		if f.Is("Host") {
			hosts++
			if !bytes.Equal(f.Value, x.Host) {
				return fmt.Sprintf("Host field %q, Exchange.Host %q", f.Value, x.Host)
			}
		}
	}
	if hosts != 1 {
		return fmt.Sprintf("%d Host fields", hosts)
	}
	return ""
}

// knownGap reports whether x has a field the fast path does not check while the full parser does
// (see TestFastExchangeFramingFields), as long as that gap is there.
func knownGap(x *Exchange) bool {
	if fuzzStrict {
		return false
	}
	gaps := knownFastGaps()
	for _, f := range x.Fields {
		for name, open := range gaps {
			if open && f.Is(name) {
				return true
			}
		}
	}
	return false
}

func allSame(v []string) bool {
	for _, s := range v[1:] {
		if s != v[0] {
			return false
		}
	}
	return true
}

// FuzzRawResponseHead checks Send's response-head parser (readRawHead) against RoundTrip's
// (readResponse) on the same bytes, for GET and HEAD, with read buffers from 16 bytes to 32 KiB
// filled by reads of various sizes: neither panics; when both read a head they agree on the
// status, the framing of the body, keep-alive and every field's values (folding undone; runs of
// white space inside a folded value may differ), and then on the body and what follows it.
// Interim (1xx) heads are followed by the next head, as Send and RoundTrip do.
func FuzzRawResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: 9\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n1\r\na\r\n0\r\n\r\nrest",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nEtag: x\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nframes",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200\r\nX-F: a\r\n b\r\n\tc\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\nX-F: a\n b\nContent-Length: 1\n\nx",
		"HTTP/1.1 200 OK\r\nX-F: a\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nConnection: x,\r\n close\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-F: v\r\n", MaxFields+1) + "\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-F: v\r\n", 3*MaxFields) + "Content-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("l", 5000) + "\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\n X-F: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-F: \x00\r\n\r\n",
		"HTTP/1.1 999 Whatever\r\n\r\n",
		"\r\n\r\n",
		"",
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(12*1+0)) // 16-byte buffer, one byte per read
		f.Add([]byte(s), uint8(12*3+2))
	}
	f.Fuzz(func(t *testing.T, data []byte, shape uint8) {
		size := 16 << (shape % 12) // 16 B .. 32 KiB
		chunk := []int{0, 1, 3, 7, 64, 1000}[int(shape/12)%6]
		if chunk > 0 && chunk < 16 && len(data) > 1<<10 {
			chunk = 1000 // rawHead rescans the buffer per read (TestRawHeadTrickle): tiny reads only on small inputs
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if msg := checkRawResponse(data, method, size, chunk); msg != "" {
				t.Fatalf("%s, buffer %d, reads of %d:\n%q\n%s", method, size, chunk, data, msg)
			}
		}
	})
}

// checkRawResponse compares readRawHead with readResponse over data; it returns what they
// disagree on, or "".
func checkRawResponse(data []byte, method string, size, chunk int) string {
	rb := bufio.NewReaderSize(&chunkReader{bytes.NewReader(data), chunk}, size)
	fb := bufio.NewReaderSize(&chunkReader{bytes.NewReader(data), chunk}, size)
	isHead := method == http.MethodHead
	req := &http.Request{Method: method}
	c := &h1Conn{t: New(Config{}), br: rb}
	for i := 0; i < 4; i++ {
		r := &RawResponse{c: c}
		rerr := c.readRawHead(r, isHead)
		resp, ferr := readResponse(fb, req)
		if rerr != nil || ferr != nil {
			return oneSided(rerr, ferr)
		}
		if r.Code != resp.StatusCode {
			return fmt.Sprintf("status %d, readResponse %d", r.Code, resp.StatusCode)
		}
		if msg := compareFraming(r, resp, isHead); msg != "" {
			return msg
		}
		if msg := compareFields(r.Fields, resp.Header); msg != "" {
			return msg
		}
		if r.Code < 200 && r.Code != http.StatusSwitchingProtocols {
			continue // an interim answer: the next head follows
		}
		return compareBodies(r, resp, rb, fb)
	}
	return ""
}

// oneSided judges a head that one parser refused: both refusing is agreement; the raw parser
// refusing alone is tolerated where it is stricter by design; the raw parser accepting what
// readResponse refuses is a disagreement.
func oneSided(rerr, ferr error) string {
	switch {
	case rerr != nil && ferr != nil:
		return ""
	case rerr == nil:
		return fmt.Sprintf("readRawHead accepts, readResponse refuses: %v", ferr)
	case fuzzStrict:
		return fmt.Sprintf("readResponse accepts, readRawHead refuses: %v", rerr)
	}
	// Known, by design: a second Transfer-Encoding field in an
	// HTTP/1.0 answer (readResponse ignores them all); Transfer-Encoding or Connection values
	// that only Unicode folding or Unicode white space makes "chunked" or "close"; a head over
	// 1 MiB gathered in pieces; and the 1 MiB limit itself (TestRawHeadLimit).
	return ""
}

// framingKind names where a body ends.
func rawFraming(r *RawResponse) string {
	switch {
	case r.NoBody:
		return "none"
	case r.Chunked:
		return "chunked"
	case r.Length >= 0:
		return fmt.Sprintf("length %d", r.Length)
	}
	return "until EOF"
}

func fullFraming(resp *http.Response) string {
	switch {
	case resp.Body == http.NoBody:
		return "none"
	case len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked":
		return "chunked"
	case resp.ContentLength >= 0:
		return fmt.Sprintf("length %d", resp.ContentLength)
	}
	return "until EOF"
}

func compareFraming(r *RawResponse, resp *http.Response, isHead bool) string {
	if a, b := rawFraming(r), fullFraming(resp); a != b {
		return fmt.Sprintf("framing: %s, readResponse %s", a, b)
	}
	// Keep-alive: readResponse folds Connection's tokens with Unicode rules; the raw parser with
	// ASCII ones (the stricter reading).
	if r.keep == resp.Close && (fuzzStrict || asciiValues(resp.Header["Connection"])) {
		return fmt.Sprintf("keep-alive %v, readResponse close %v", r.keep, resp.Close)
	}
	// The Content-Length reported with a body-less answer to HEAD or 304 (204 and 1xx: -1 and 0).
	if r.NoBody && (isHead || r.Code == http.StatusNotModified) && r.Code >= 200 && r.Code != http.StatusNoContent &&
		r.Length != resp.ContentLength {
		chunkedToo := false
		for _, f := range r.Fields {
			chunkedToo = chunkedToo || f.Is("Transfer-Encoding")
		}
		// Known: with Transfer-Encoding as well, RawResponse reports -1 and http.Response the
		// Content-Length sent (which RFC 9112 6.3 says to ignore).
		if fuzzStrict || !chunkedToo {
			return fmt.Sprintf("Length %d, readResponse ContentLength %d", r.Length, resp.ContentLength)
		}
	}
	return ""
}

func asciiValues(vv []string) bool {
	for _, v := range vv {
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 {
				return false
			}
		}
	}
	return true
}

// normalizeSpace collapses runs of spaces and tabs into one space and trims the ends.
func normalizeSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
}

func compareFields(fields []Field, h http.Header) string {
	raw := map[string][]string{}
	for _, f := range fields {
		k := http.CanonicalHeaderKey(string(f.Name))
		raw[k] = append(raw[k], normalizeSpace(string(f.Value)))
	}
	full := map[string][]string{}
	for k, vv := range h {
		for _, v := range vv {
			full[k] = append(full[k], normalizeSpace(v))
		}
	}
	for _, m := range []map[string][]string{raw, full} { // readResponse removes the framing fields it used
		delete(m, "Transfer-Encoding")
		delete(m, "Content-Length")
	}
	if !reflect.DeepEqual(raw, full) {
		return fmt.Sprintf("fields\nraw:  %q\nfull: %q", raw, full)
	}
	return ""
}

// compareBodies reads both bodies and what follows them.
func compareBodies(r *RawResponse, resp *http.Response, rb, fb *bufio.Reader) string {
	if r.Code == http.StatusSwitchingProtocols {
		a, _ := io.ReadAll(rb)
		b, _ := io.ReadAll(fb)
		if !bytes.Equal(a, b) {
			return fmt.Sprintf("after a 101: %q, readResponse %q", a, b)
		}
		return ""
	}
	a, aerr := io.ReadAll(io.LimitReader(r, 4<<20))
	b, berr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if (aerr == nil) != (berr == nil) {
		return fmt.Sprintf("body errors: %v, readResponse %v", aerr, berr)
	}
	if aerr != nil {
		return ""
	}
	if !bytes.Equal(a, b) {
		return fmt.Sprintf("body %q, readResponse %q", a, b)
	}
	for k, v := range r.Trailer {
		if !reflect.DeepEqual(v, resp.Trailer[k]) {
			return fmt.Sprintf("trailer %s: %q, readResponse %q", k, v, resp.Trailer[k])
		}
	}
	for k, v := range resp.Trailer {
		if v != nil && !reflect.DeepEqual(v, r.Trailer[k]) {
			return fmt.Sprintf("trailer %s: %q, readResponse %q", k, r.Trailer[k], v)
		}
	}
	ra, _ := io.ReadAll(rb)
	rf, _ := io.ReadAll(fb)
	if !bytes.Equal(ra, rf) {
		return fmt.Sprintf("after the body: %q, readResponse %q", ra, rf)
	}
	return ""
}
