package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/membership"
)

// The fast path (fast.go) must answer every request it takes as ServeHTTP does. The tests here send
// the same raw bytes through a router with the fast path and one without it (Options.noFast), to a
// scripted raw node, and compare what the node received and what the client got.

// scriptNode is a raw HTTP/1.1 node: it reads each request head (and a body framed by
// Content-Length or chunked), records it, and answers with the bytes of the current script. The
// health path and the probe path get fixed answers and are not recorded.
type scriptNode struct {
	ln     net.Listener
	script atomic.Pointer[nodeScript]

	mu    sync.Mutex
	reqs  []string // normalized requests, in arrival order
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type nodeScript struct {
	resp  string // written after each request
	close bool   // the connection is closed after the answer
}

const probeAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nprobe"

func newScriptNode(t *testing.T) *scriptNode {
	t.Helper()
	n := &scriptNode{ln: listen(t), conns: map[net.Conn]struct{}{}}
	n.script.Store(&nodeScript{resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := n.ln.Accept()
			if err != nil {
				return
			}
			n.mu.Lock()
			n.conns[c] = struct{}{}
			n.mu.Unlock()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() {
					n.mu.Lock()
					delete(n.conns, c)
					n.mu.Unlock()
					c.Close()
				}()
				n.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		n.ln.Close()
		n.mu.Lock()
		for c := range n.conns {
			c.Close()
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

func (n *scriptNode) Addr() string { return n.ln.Addr().String() }

func (n *scriptNode) set(resp string, close bool) {
	n.script.Store(&nodeScript{resp: resp, close: close})
}

func (n *scriptNode) serve(c net.Conn) {
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		lines, err := readHeadLines(br)
		if err != nil {
			return
		}
		body, err := readReqBody(br, lines)
		if err != nil {
			return
		}
		target := ""
		if f := strings.Fields(lines[0]); len(f) == 3 {
			target = f[1]
		}
		switch {
		case target == "/healthz":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			continue
		case strings.HasPrefix(target, "/__probe"):
			_, _ = io.WriteString(c, probeAnswer)
			continue
		}
		n.mu.Lock()
		n.reqs = append(n.reqs, normalizeNodeRequest(lines, body))
		n.mu.Unlock()
		s := n.script.Load()
		if _, err := io.WriteString(c, s.resp); err != nil || s.close {
			return
		}
	}
}

// count and since read the recorded requests: since(count()) after an exchange is what it sent.
func (n *scriptNode) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.reqs)
}

func (n *scriptNode) since(i int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.reqs[i:])
}

// readHeadLines reads one head up to its empty line; lines without their CRLF.
func readHeadLines(br *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		if l == "" {
			if len(lines) == 0 {
				continue
			}
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// readReqBody reads the body a request head announces (Content-Length or chunked).
func readReqBody(br *bufio.Reader, lines []string) (string, error) {
	for _, l := range lines[1:] {
		name, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", err
			}
			b := make([]byte, n)
			_, err = io.ReadFull(br, b)
			return string(b), err
		case strings.EqualFold(name, "Transfer-Encoding") && strings.EqualFold(v, "chunked"):
			b, err := io.ReadAll(httputil.NewChunkedReader(br))
			if err != nil {
				return "", err
			}
			_, err = readHeadLinesOrEmpty(br) // the trailer section
			return string(b), err
		}
	}
	return "", nil
}

func readHeadLinesOrEmpty(br *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if l = strings.TrimRight(l, "\r\n"); l == "" {
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// newTraceRE finds a trace id the router generated, in traceparent and X-B3-Traceid.
var newTraceRE = regexp.MustCompile(`(Traceparent: 00-|X-B3-Traceid: )[0-9a-f]{32}`)

// normalizeNodeRequest turns a request as a node received it into comparable text: the request
// line, then its fields as "Canonical-Name: value" sorted (a multiset: order is free), then the
// body. The router's own span id (random per request) is replaced by <span>, after checking that
// X-B3-Spanid and the traceparent's span agree.
func normalizeNodeRequest(lines []string, body string) string {
	var fields []string
	var b3Span, tpSpan string
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		name = http.CanonicalHeaderKey(name)
		value = strings.Trim(value, " \t")
		switch name {
		case "X-B3-Spanid":
			b3Span, value = value, "<span>"
		case "Traceparent":
			if p := strings.Split(value, "-"); len(p) == 4 {
				tpSpan, p[2] = p[2], "<span>"
				value = strings.Join(p, "-")
			}
		}
		fields = append(fields, name+": "+value)
	}
	if b3Span != tpSpan || (b3Span != "" && !validSpanID(b3Span)) {
		fields = append(fields, fmt.Sprintf("!! span ids disagree: X-B3-Spanid %q, traceparent %q", b3Span, tpSpan))
	}
	slices.Sort(fields)
	return lines[0] + "\n" + strings.Join(fields, "\n") + "\n\n" + body
}

// fpAnswer is what a client got for one request, in comparable form.
type fpAnswer struct {
	Err      string   // no response head at all
	Interim  []string // 1xx answers before the final one
	Status   int
	Header   http.Header // without Date
	HasDate  bool
	Length   int64
	TE       []string
	Close    bool
	Body     string
	BodyErr  bool // the body broke off
	Trailer  http.Header
	ProbeErr string // a request sent next on the same connection was not answered properly
}

func (a fpAnswer) String() string {
	var b strings.Builder
	if a.Err != "" {
		fmt.Fprintf(&b, "no answer: %s\n", a.Err)
	}
	for _, i := range a.Interim {
		fmt.Fprintf(&b, "interim %s\n", i)
	}
	fmt.Fprintf(&b, "status %d, length %d, te %v, close %v, date %v\n", a.Status, a.Length, a.TE, a.Close, a.HasDate)
	fmt.Fprintf(&b, "header:\n%s", headerText(a.Header))
	fmt.Fprintf(&b, "body %q (broke off: %v)\ntrailer:\n%s", short(a.Body), a.BodyErr, headerText(a.Trailer))
	if a.ProbeErr != "" {
		fmt.Fprintf(&b, "next request on the connection: %s\n", a.ProbeErr)
	}
	return b.String()
}

func headerText(h http.Header) string {
	var lines []string
	for k, vv := range h {
		for _, v := range vv {
			lines = append(lines, "  "+k+": "+short(v)+"\n")
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}

func short(s string) string {
	if len(s) > 120 {
		return s[:60] + fmt.Sprintf("...(%d bytes)...", len(s)-100) + s[len(s)-40:]
	}
	return s
}

// readAnswer reads interim answers and the final one, its body and trailers.
func readAnswer(br *bufio.Reader, head bool) fpAnswer {
	var a fpAnswer
	req := &http.Request{Method: http.MethodGet}
	if head {
		req.Method = http.MethodHead
	}
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			a.Err = err.Error()
			return a
		}
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			h := resp.Header.Clone()
			a.Interim = append(a.Interim, strconv.Itoa(resp.StatusCode)+"\n"+headerText(h))
			continue
		}
		a.Status, a.Length, a.TE, a.Close = resp.StatusCode, resp.ContentLength, resp.TransferEncoding, resp.Close
		a.Header = resp.Header.Clone()
		_, a.HasDate = a.Header["Date"]
		delete(a.Header, "Date")
		body, err := io.ReadAll(resp.Body)
		a.Body, a.BodyErr = string(body), err != nil
		resp.Body.Close()
		if len(resp.Trailer) > 0 {
			a.Trailer = resp.Trailer.Clone()
		}
		return a
	}
}

// exchangeRaw sends raw on a new connection to addr and reads the answer; then, unless the
// connection is done, it sends a GET for the probe path on it and checks that it is answered (a
// stray byte in the first answer would spoil it). mid runs between the two.
func exchangeRaw(t *testing.T, addr, raw string, head bool, mid func()) fpAnswer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	a := readAnswer(br, head)
	if mid != nil {
		mid()
	}
	if a.Err != "" || a.Close || a.BodyErr || a.Status == http.StatusSwitchingProtocols {
		return a
	}
	if _, err := io.WriteString(c, "GET /__probe HTTP/1.1\r\nHost: probe\r\nX-Request-Id: probe\r\n\r\n"); err != nil {
		a.ProbeErr = err.Error()
		return a
	}
	p := readAnswer(br, false)
	if p.Err != "" || p.Status != 200 || p.Body != "probe" {
		a.ProbeErr = fmt.Sprintf("status %d body %q err %q", p.Status, short(p.Body), p.Err)
	}
	return a
}

// rawReq joins a request's lines with CRLF and ends the head.
func rawReq(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

const (
	fpSessionID = "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
	fpTrace     = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	fpID        = "req-fast-1"
)

// rq is a request with a valid traceparent, a tracestate and an X-Request-Id (so that what the
// router sends is deterministic but for its span id), plus extra field lines.
func rq(method, target string, extra ...string) string {
	lines := append([]string{method + " " + target + " HTTP/1.1", "Host: front.example", "User-Agent: fastpath-test/1",
		"Accept: */*", "Traceparent: " + fpTrace, "Tracestate: vendor=x", "X-Request-Id: " + fpID}, extra...)
	return rawReq(lines...)
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Node: raw\r\nContent-Length: 5\r\n\r\nhello"

type fpCase struct {
	name   string
	pair   string // routers to use ("" the default ones)
	req    string
	head   bool   // a HEAD request: its answer has no body
	resp   string // the node's answer
	close  bool   // the node closes the connection after it
	fast   bool   // the fast path must take the request (else it must decline it)
	status int    // the status both must answer (0: not checked)
	// legit describes a difference the two paths may show here, each answering correctly: it is
	// logged, and the requests and answers are compared after sameSent and sameAns.
	legit    string
	sameSent func(string) string // normalizes a request the node got
	sameAns  func(*fpAnswer)     // normalizes an answer
	// brokenBody: the node's body breaks off; both must tell the client the answer is incomplete,
	// each in its own way.
	brokenBody bool
	nodeReqs   int                 // requests the node must get (0: 1, or none for the router's own 4xx and 503)
	nodeGot    string              // when set, the normalized request the node must get
	check      func(fpAnswer) bool // more the answer must satisfy (both paths)
}

type routerPair struct{ fast, full *testRouter }

func TestFastPathMatchesFullPath(t *testing.T) {
	node := newScriptNode(t)
	pairs := map[string]*routerPair{}
	pairOf := func(name string) *routerPair {
		if p := pairs[name]; p != nil {
			return p
		}
		mutate := func(o *Options) {
			o.Settings.Backends = []string{node.Addr()}
			switch name {
			case "trust":
				o.TrustForwarded = true
			case "timeout":
				o.Settings.ResponseHeaderTimeout = 150 * time.Millisecond
			case "longpin":
				o.PinHeader = "X-Herd-Debug-Pin-Node-For-Router-Tests" // longer than 32 bytes
			}
		}
		p := &routerPair{
			fast: startRouter(t, listen(t), nil, mutate),
			full: startRouter(t, listen(t), nil, func(o *Options) { mutate(o); o.noFast = true }),
		}
		pairs[name] = p
		return p
	}

	// Every field the router edits, drops or reads.
	everything := rq("GET", "/app/page?x=1&y=two",
		"Cookie: theme=dark; JSESSIONID="+fpSessionID+".n1",
		"Cookie: other=1",
		"X-Forwarded-For: 6.6.6.6, 7.7.7.7",
		"x-forwarded-for: 8.8.8.8",
		"X-Forwarded-Host: spoof.example",
		"X-Forwarded-Proto: https",
		"Forwarded: for=1.2.3.4",
		"X-Herd-Node: "+node.Addr(),
		"Proxy-Authorization: Basic eA==",
		"Proxy-Connection: keep-alive",
		"Keep-Alive: timeout=5",
		"Connection: keep-alive",
		"X-B3-Parentspanid: 1111111111111111",
		"X-B3-Flags: 1",
		"B3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
		"Trailer: X-T",
		"Content-Length: 0",
		"x-lower-custom: a  b",
		"If-None-Match: \"v1\"")
	manyFields := "HTTP/1.1 200 OK\r\n"
	for i := range 70 {
		manyFields += fmt.Sprintf("X-Field-%02d: %d\r\n", i, i)
	}
	manyFields += "Content-Length: 4\r\n\r\nmany"
	manyReqFields := []string{}
	for i := range 70 {
		manyReqFields = append(manyReqFields, fmt.Sprintf("X-Field-%02d: %d", i, i))
	}

	cases := []fpCase{
		{name: "GET with every field the router handles", req: everything, resp: okAnswer, fast: true, status: 200,
			nodeGot: everythingAt("127.0.0.1"),
			check: func(a fpAnswer) bool {
				return a.Body == "hello" && a.Header.Get("X-Node") == "raw" && a.Header.Get("X-Request-Id") == fpID
			}},
		{name: "same with TrustForwarded", pair: "trust", req: everything, resp: okAnswer, fast: true, status: 200,
			nodeGot: everythingAt("6.6.6.6, 7.7.7.7, 8.8.8.8, 127.0.0.1")},
		{name: "Connection: Keep-Alive in capitals", req: rq("GET", "/ka", "Connection: Keep-Alive"), resp: okAnswer, fast: true, status: 200},
		{name: "HEAD", req: rq("HEAD", "/head"), head: true,
			resp: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1234\r\n\r\n", fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Length == 1234 && a.Body == "" }},
		{name: "HEAD without a length", req: rq("HEAD", "/head2"), head: true,
			resp: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", fast: true, status: 200},
		{name: "length, cookies and hop-by-hop fields", req: rq("GET", "/cookie"),
			resp: "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5, max=100\r\n" +
				"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Request-Id: node-made-this\r\n" +
				"Set-Cookie: JSESSIONID=" + fpSessionID + ".n1; Path=/; HttpOnly\r\nSet-Cookie: theme=light\r\n" +
				"Content-Length: 3\r\n\r\nabc",
			close: true, fast: true, status: 200,
			check: func(a fpAnswer) bool {
				h := a.Header
				return a.Body == "abc" && len(h["Set-Cookie"]) == 2 && h.Get("X-Request-Id") == fpID && len(h["X-Request-Id"]) == 1 &&
					h.Get("X-Secret") == "" && h.Get("Keep-Alive") == "" && h.Get("Proxy-Connection") == "" && h.Get("Upgrade") == "" && !a.Close
			}},
		{name: "chunked with a trailer", req: rq("GET", "/chunked"),
			resp: "HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: c0ffee\r\n\r\n", fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Body == "hello world" && a.Trailer.Get("X-Checksum") == "c0ffee" }},
		{name: "chunked and a length", req: rq("GET", "/chunked-cl"),
			resp: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			fast: true, status: 200, check: func(a fpAnswer) bool { return a.Body == "abc" && a.Length == -1 }},
		{name: "HTTP/1.0 body until close", req: rq("GET", "/http10"),
			resp: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", close: true, fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Body == "until the end" && slices.Equal(a.TE, []string{"chunked"}) }},
		{name: "204", req: rq("GET", "/204"), resp: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", fast: true, status: 204,
			check: func(a fpAnswer) bool { return a.Header.Get("X-A") == "1" && a.Header.Get("Content-Length") == "" }},
		{name: "304 with a length", req: rq("GET", "/304", "If-None-Match: \"v1\""),
			resp: "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 42\r\n\r\n", fast: true, status: 304,
			check: func(a fpAnswer) bool { return a.Header.Get("Content-Length") == "42" && a.Header.Get("Etag") == `"v1"` }},
		{name: "103 then 200", req: rq("GET", "/hints"),
			resp: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", fast: true, status: 200,
			check: func(a fpAnswer) bool {
				return len(a.Interim) == 1 && strings.HasPrefix(a.Interim[0], "103\n") && strings.Contains(a.Interim[0], "Link: </a.css>; rel=preload") &&
					!strings.Contains(a.Interim[0], "X-Hop") && a.Body == "final" && a.Header.Get("Link") == ""
			}},
		{name: "103 with the node's X-Request-Id", req: rq("GET", "/hints-id"),
			resp: "HTTP/1.1 103 Early Hints\r\nX-Request-Id: node-103\r\nLink: </b.css>; rel=preload\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", fast: true, status: 200,
			legit: "the fast path drops a node's X-Request-Id from an interim answer, the full path passes it on",
			sameAns: func(a *fpAnswer) {
				for i, s := range a.Interim {
					a.Interim[i] = strings.Replace(s, "  X-Request-Id: node-103\n", "", 1)
				}
			}},
		{name: "obsolete line folding", req: rq("GET", "/fold"),
			resp: "HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\nContent-Length: 2\r\n\r\nok", fast: true, status: 200,
			legit: "an obsolete line folding is undone with one space on the full path, with the line end's bytes made spaces on the fast path (RFC 9112 5.2 allows both)",
			sameAns: func(a *fpAnswer) {
				for _, vv := range a.Header {
					for i, v := range vv {
						vv[i] = strings.Join(strings.Fields(v), " ")
					}
				}
			},
			check: func(a fpAnswer) bool {
				return strings.Join(strings.Fields(a.Header.Get("X-Folded")), " ") == "first second" && a.Body == "ok"
			}},
		{name: "head larger than 32 KiB", req: rq("GET", "/big"),
			resp: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 40<<10) + "\r\nContent-Length: 3\r\n\r\nbig", fast: true, status: 200,
			check: func(a fpAnswer) bool { return len(a.Header.Get("X-Big")) == 40<<10 && a.Body == "big" }},
		{name: "70 header fields", req: rq("GET", "/many"), resp: manyFields, fast: true, status: 200,
			check: func(a fpAnswer) bool { return len(a.Header) == 72 && a.Body == "many" }},
		{name: "body breaks off", req: rq("GET", "/short"),
			resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", close: true, fast: true, brokenBody: true},
		{name: "malformed status line", req: rq("GET", "/bad-status"),
			resp: "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", close: true, fast: true, status: 502},
		{name: "differing lengths", req: rq("GET", "/bad-length"),
			resp: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", close: true, fast: true, status: 502},
		{name: "101 nobody asked for", req: rq("GET", "/switch"),
			resp: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", close: true, fast: true, status: 502},
		{name: "101 nobody asked for, without Upgrade fields", req: rq("GET", "/switch-bare"),
			resp: "HTTP/1.1 101 Switching Protocols\r\n\r\n", close: true, fast: true, status: 502},
		// Sent on the pooled connection, then again on a fresh one (the pooled one may have been
		// stale), then given up: the only node has been tried.
		{name: "connection closed at once", req: rq("GET", "/empty"), resp: "", close: true, fast: true, status: 502, nodeReqs: 2,
			check: func(a fpAnswer) bool {
				return strings.Contains(a.Body, "the node failed to answer (last node n1, 1 attempts)")
			}},
		{name: "HEAD, malformed answer", req: rq("HEAD", "/head-bad"), head: true,
			resp: "HTTP/1.1 2x0 OK\r\n\r\n", close: true, fast: true, status: 502},
		{name: "HEAD pinned to an unknown node", req: rq("HEAD", "/head-pin", "X-Herd-Node: nosuch"), head: true,
			resp: okAnswer, fast: true, status: 503},
		{name: "GET pinned to an unknown node", req: rq("GET", "/pin", "X-Herd-Node: nosuch"), resp: okAnswer, fast: true, status: 503},
		{name: "pin header longer than 32 bytes", pair: "longpin",
			req: rq("GET", "/longpin", "X-Herd-Debug-Pin-Node-For-Router-Tests: nosuch"), resp: okAnswer, fast: true, status: 503},
		{name: "empty traceparent before a valid one",
			req: rawReq("GET /trace HTTP/1.1", "Host: front.example", "X-Request-Id: "+fpID, "Traceparent:",
				"Traceparent: "+fpTrace, "Tracestate: vendor=x"), resp: okAnswer, fast: true, status: 200,
			legit: "both paths start a new trace (the first, empty, traceparent counts): its random id differs",
			sameSent: func(r string) string {
				if strings.Contains(r, "4bf92f3577b34da6a3ce929d0e0e4736") || strings.Contains(r, "Tracestate") {
					return r + "\n!! the client's trace was continued"
				}
				return newTraceRE.ReplaceAllString(r, "$1<trace>")
			}},

		{name: "braces and quotes in the target", req: rq("GET", "/brace/{id}/\"q\"?v={x}"), resp: okAnswer, fast: true, status: 200,
			legit: "the fast path forwards the target as sent, the full path re-escapes the path (url.URL.EscapedPath); both decode alike",
			sameSent: func(r string) string {
				line, rest, _ := strings.Cut(r, "\n")
				f := strings.Fields(line)
				if len(f) == 3 {
					if u, err := url.PathUnescape(f[1]); err == nil {
						f[1] = u
					}
				}
				return strings.Join(f, " ") + "\n" + rest
			}},
		{name: "unsafe X-Request-Id", req: rawReq("GET /badid HTTP/1.1", "Host: front.example", "X-Request-Id: bad<id>", "Traceparent: "+fpTrace),
			resp: okAnswer, fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Header.Get("X-Request-Id") == "4bf92f3577b34da6a3ce929d0e0e4736" }},
		{name: "two User-Agent fields", req: rq("GET", "/ua", "User-Agent: second/2"), resp: okAnswer, fast: true, status: 200,
			legit:    "the fast path forwards every User-Agent field, the full path only the first (as http.Request.Write does)",
			sameSent: func(r string) string { return strings.Replace(r, "User-Agent: second/2\n", "", 1) }},
		{name: "empty body with a length", req: rq("GET", "/cl0"), resp: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Length == 0 && a.Body == "" }},
		{name: "empty chunked body", req: rq("GET", "/chunk0"), resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			fast: true, status: 200,
			legit:   "the fast path relays an empty chunked body chunked, the full path's server gives it Content-Length: 0",
			sameAns: func(a *fpAnswer) { a.Header.Del("Content-Length"); a.Length, a.TE = -1, nil }},
		{name: "trailer nobody announced", req: rq("GET", "/trailer2"),
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Late: 1\r\n\r\n", fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Body == "hi" && a.Trailer.Get("X-Late") == "1" }},
		{name: "100 Continue before the answer", req: rq("GET", "/continue"),
			resp: "HTTP/1.1 100 Continue\r\n\r\n" + okAnswer, fast: true, status: 200,
			check: func(a fpAnswer) bool { return len(a.Interim) == 0 && a.Body == "hello" }},
		{name: "HTTP/1.0 keep-alive answer", req: rq("GET", "/ka10"),
			resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", fast: true, status: 200},
		{name: "malformed field name in the answer", req: rq("GET", "/bad-field"),
			resp: "HTTP/1.1 200 OK\r\nX Bad: 1\r\nContent-Length: 2\r\n\r\nok", close: true, fast: true, status: 502},

		{name: "HEAD answered chunked", req: rq("HEAD", "/head-chunked"), head: true,
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", fast: true, status: 200,
			check: func(a fpAnswer) bool { return a.Header.Get("Content-Length") == "" && a.TE == nil }},
		{name: "large body", req: rq("GET", "/large"),
			resp: "HTTP/1.1 200 OK\r\nContent-Length: 204800\r\n\r\n" + strings.Repeat("0123456789abcdef", 204800/16), fast: true, status: 200,
			check: func(a fpAnswer) bool { return len(a.Body) == 204800 && a.Length == 204800 }},
		{name: "large chunked body", req: rq("GET", "/large-chunked"),
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("4000\r\n"+strings.Repeat("x", 0x4000)+"\r\n", 10) + "0\r\n\r\n",
			fast: true, status: 200, check: func(a fpAnswer) bool { return len(a.Body) == 10*0x4000 }},
		{name: "node never answers", pair: "timeout", req: rq("GET", "/silent"), resp: "", fast: true, status: 504,
			check: func(a fpAnswer) bool { return strings.Contains(a.Body, "the node did not answer in time") }},

		// Declined: the full path serves these on both routers.
		{name: "POST", req: rq("POST", "/post", "Content-Length: 4") + "body", resp: okAnswer, status: 200},
		{name: "GET with a body", req: rq("GET", "/get-body", "Content-Length: 5") + "hello", resp: okAnswer, status: 200},
		{name: "GET with a chunked body", req: rq("GET", "/get-chunked", "Transfer-Encoding: chunked") + "5\r\nhello\r\n0\r\n\r\n",
			resp: okAnswer, status: 200},
		{name: "Connection: close", req: rq("GET", "/close", "Connection: close"), resp: okAnswer, status: 200},
		{name: "Connection: keep-alive, X-Hop", req: rq("GET", "/hop", "Connection: keep-alive, X-Hop", "X-Hop: 1"), resp: okAnswer, status: 200},
		{name: "websocket upgrade", req: rq("GET", "/ws", "Connection: upgrade", "Upgrade: websocket"), resp: okAnswer, status: 200},
		{name: "Expect: 100-continue", req: rq("GET", "/expect", "Expect: 100-continue"), resp: okAnswer, status: 200},
		{name: "TE: trailers", req: rq("GET", "/te", "TE: trailers"), resp: okAnswer, status: 200},
		{name: "escaped slash", req: rq("GET", "/a%2Fb"), resp: okAnswer, status: 200},
		{name: "semicolon in the query", req: rq("GET", "/q?a=1;b=2"), resp: okAnswer, status: 200},
		{name: "HTTP/1.0 request", req: strings.Replace(rq("GET", "/v10"), "HTTP/1.1", "HTTP/1.0", 1), resp: okAnswer, status: 200},
		{name: "70 request fields", req: rq("GET", "/many-req", manyReqFields...), resp: okAnswer, status: 200},
		{name: "metrics path", req: rq("GET", "/metrics"), resp: okAnswer, status: 403},
		{name: "folded request field", req: rq("GET", "/fold-req", "X-Fold: a", " b"), resp: okAnswer, status: 400},
		{name: "two Host fields", req: rq("GET", "/two-hosts", "Host: other.example"), resp: okAnswer, status: 400},
	}

	type outcome struct {
		ans    fpAnswer
		sent   []string // what the node received
		served int64    // fast-path requests counted
	}
	run := func(t *testing.T, r *testRouter, c fpCase) outcome {
		// Both routers start each case alike: one idle pooled connection to the node (a failure on
		// a reused connection is retried once on a fresh one, and both paths must do that alike).
		r.run.Load().transport.CloseIdleConnections()
		if w := exchangeRaw(t, r.Addr(), "GET /__probe/warm HTTP/1.1\r\nHost: warm\r\n\r\n", false, nil); w.Status != 200 || w.ProbeErr != "" {
			t.Fatalf("warming up: %s", w)
		}
		node.set(c.resp, c.close)
		mark, before := node.count(), r.fastServed.Load()
		var o outcome
		o.ans = exchangeRaw(t, r.Addr(), c.req, c.head, func() {
			o.served = r.fastServed.Load() - before
			o.sent = node.since(mark)
		})
		return o
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := pairOf(c.pair)
			fast, full := run(t, p.fast, c), run(t, p.full, c)
			if want := map[bool]int64{true: 1, false: 0}[c.fast]; fast.served != want {
				t.Errorf("fast path counted %d requests, want %d (fast %v)", fast.served, want, c.fast)
			}
			if full.served != 0 {
				t.Errorf("the router without the fast path counted %d fast requests", full.served)
			}
			fs, us := fast.sent, full.sent
			if c.sameSent != nil && !slices.Equal(fs, us) {
				t.Logf("known difference (%s):\n%s", c.legit, diffRequests(fs, us))
				fs, us = slices.Clone(fs), slices.Clone(us)
				for _, l := range [][]string{fs, us} {
					for i := range l {
						l[i] = c.sameSent(l[i])
					}
				}
			}
			if !slices.Equal(fs, us) {
				t.Errorf("the node received different requests:\n%s", diffRequests(fs, us))
			}
			want := c.nodeReqs
			switch {
			case want != 0:
			case c.status < 400 || c.status == http.StatusBadGateway || c.status == http.StatusGatewayTimeout:
				want = 1
			default:
				want = -1 // the router's own answers (400, 403, 503): the node gets nothing
			}
			for path, o := range map[string]outcome{"fast": fast, "full": full} {
				switch {
				case want > 0 && len(o.sent) != want:
					t.Errorf("%s path: the node got %d requests, want %d", path, len(o.sent), want)
				case want < 0 && len(o.sent) != 0:
					t.Errorf("%s path: the node got %d requests, want none", path, len(o.sent))
				case c.nodeGot != "" && (len(o.sent) != 1 || o.sent[0] != c.nodeGot):
					t.Errorf("%s path: the node got\n%s\nwant\n%s", path, strings.Join(o.sent, "\n--\n"), c.nodeGot)
				}
				if c.check != nil && !c.brokenBody && !c.check(o.ans) {
					t.Errorf("%s path: unexpected answer:\n%s", path, o.ans)
				}
			}
			fa, fu := fast.ans, full.ans
			if c.sameAns != nil && !reflect.DeepEqual(fa, fu) {
				t.Logf("known difference (%s):\nfast path:\n%s\nfull path:\n%s", c.legit, fa, fu)
				fa.Header, fu.Header = fa.Header.Clone(), fu.Header.Clone()
				fa.Interim, fu.Interim = slices.Clone(fa.Interim), slices.Clone(fu.Interim)
				c.sameAns(&fa)
				c.sameAns(&fu)
			}
			if c.head && (fa.Header.Get("Content-Length") == "") != (fu.Header.Get("Content-Length") == "") {
				// RFC 9110 9.3.2: a HEAD's answer may or may not carry the length a GET would get.
				t.Logf("HEAD: Content-Length %q on the fast path, %q on the full path", fa.Header.Get("Content-Length"), fu.Header.Get("Content-Length"))
				for _, a := range []*fpAnswer{&fa, &fu} {
					a.Header.Del("Content-Length")
					a.Length = -1
				}
			}
			if c.brokenBody {
				for path, a := range map[string]fpAnswer{"fast": fa, "full": fu} {
					if a.Err == "" && !a.BodyErr {
						t.Errorf("%s path: a body that broke off came through as complete:\n%s", path, a)
					}
				}
				if fa.Err != fu.Err || fa.BodyErr != fu.BodyErr {
					t.Logf("the paths tell the client differently that the body broke off:\nfast:\n%s\nfull:\n%s", fa, fu)
				}
				return
			}
			if !reflect.DeepEqual(fa, fu) {
				t.Errorf("different answers:\nfast path:\n%s\nfull path:\n%s", fa, fu)
			}
			for path, a := range map[string]fpAnswer{"fast": fa, "full": fu} {
				if c.status != 0 && a.Status != c.status {
					t.Errorf("%s path answered %d, want %d\n%s", path, a.Status, c.status, a)
				}
				if a.ProbeErr != "" {
					t.Errorf("%s path: the connection is unusable after the answer: %s", path, a.ProbeErr)
				}
				if a.Err == "" && !a.HasDate && a.Status != http.StatusBadRequest { // the server's own 400 has none
					t.Errorf("%s path: no Date field", path)
				}
			}
		})
	}
}

// everythingAt is the request the test "GET with every field the router handles" must reach the
// node as, the client's X-Forwarded-For being xff.
func everythingAt(xff string) string {
	return normalizeNodeRequest([]string{"GET /app/page?x=1&y=two HTTP/1.1",
		"Accept: */*",
		"Cookie: other=1",
		"Cookie: theme=dark; JSESSIONID=" + fpSessionID + ".n1",
		"Host: front.example",
		"If-None-Match: \"v1\"",
		"Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-1234567890abcdef-01", // any span: it is normalized
		"Tracestate: vendor=x",
		"User-Agent: fastpath-test/1",
		"X-B3-Parentspanid: 00f067aa0ba902b7",
		"X-B3-Sampled: 1",
		"X-B3-Spanid: 1234567890abcdef",
		"X-B3-Traceid: 4bf92f3577b34da6a3ce929d0e0e4736",
		"X-Forwarded-For: " + xff,
		"X-Forwarded-Host: front.example",
		"X-Forwarded-Proto: http",
		"X-Lower-Custom: a  b",
		"X-Request-Id: " + fpID,
	}, "")
}

// diffRequests shows the lines of the node's requests that only one path sent.
func diffRequests(fast, full []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "fast path: %d requests, full path: %d\n", len(fast), len(full))
	for i := range max(len(fast), len(full)) {
		var f, u []string
		if i < len(fast) {
			f = strings.Split(fast[i], "\n")
		}
		if i < len(full) {
			u = strings.Split(full[i], "\n")
		}
		fmt.Fprintf(&b, "request %d:\n", i+1)
		for _, l := range f {
			if !slices.Contains(u, l) {
				fmt.Fprintf(&b, "  only fast: %s\n", short(l))
			}
		}
		for _, l := range u {
			if !slices.Contains(f, l) {
				fmt.Fprintf(&b, "  only full: %s\n", short(l))
			}
		}
	}
	return b.String()
}

// TestFastPathHeadErrorHasNoBody: the router's own error answer to a HEAD (here a 404: no node
// serves the path) has no body, so the next request on the connection is read correctly.
func TestFastPathHeadErrorHasNoBody(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run(map[bool]string{false: "fast", true: "full"}[noFast], func(t *testing.T) {
			r := startRouter(t, listen(t), nil, func(o *Options) { o.noFast = noFast })
			c := dialRouter(t, r)
			br := bufio.NewReader(c)
			_, _ = io.WriteString(c, "HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
			if err != nil || resp.StatusCode != 404 {
				t.Fatalf("HEAD: %v %v", resp, err)
			}
			_, _ = io.WriteString(c, "GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the GET after the HEAD: %v (the HEAD's answer had a body)", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") != "second" || !strings.Contains(string(body), "request id: second") {
				t.Fatalf("the GET after the HEAD: %d %q %q", resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
			}
			if got := r.fastServed.Load(); !noFast && got != 2 {
				t.Errorf("fast path served %d requests, want 2", got)
			}
		})
	}
}

func dialRouter(t *testing.T, r *testRouter) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// pathApp answers the request path.
func pathApp(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, r.URL.Path)
}

func TestFastPathPipelining(t *testing.T) {
	n := staticNode(t, "n1", "/echo", http.HandlerFunc(pathApp))
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()} })
	c := dialRouter(t, r)
	_, _ = io.WriteString(c, "GET /echo/one HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/two HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/echo/one", "/echo/two"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer for %s: %v", want, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("answer for %s: %d %q %v", want, resp.StatusCode, body, err)
		}
	}
	if got := r.fastServed.Load(); got != 2 {
		t.Errorf("fast path served %d requests, want 2", got)
	}
}

// TestFastPathClientGoneAbortsNodeRequest: a client that leaves while the node works on its request
// ends the node's request (the server's watcher notices the close, the Abort fires), on both paths.
func TestFastPathClientGoneAbortsNodeRequest(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run(map[bool]string{false: "fast", true: "full"}[noFast], func(t *testing.T) {
			entered, canceled := make(chan struct{}, 1), make(chan struct{}, 1)
			block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				entered <- struct{}{}
				select {
				case <-r.Context().Done():
					canceled <- struct{}{}
				case <-time.After(10 * time.Second):
				}
			})
			n := staticNode(t, "n1", "/block", block)
			log := &testapps.SyncBuffer{}
			r := startRouter(t, listen(t), nil, func(o *Options) {
				o.Settings.Backends = []string{n.Addr()}
				o.AccessLog, o.noFast = log, noFast
			})
			c, err := net.Dial("tcp", r.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			// A quick request first: the connection's watch timer is then still pending from it when
			// the second starts (it must re-arm itself for the second's full delay, not give up).
			_, _ = io.WriteString(c, "GET /counter/get HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v", resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_, _ = io.WriteString(c, "GET /block/x HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-1\r\n\r\n")
			select {
			case <-entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the request did not reach the node")
			}
			if want := map[bool]int64{false: 2, true: 0}[noFast]; r.fastServed.Load() != want {
				t.Fatalf("fast path served %d requests, want %d", r.fastServed.Load(), want)
			}
			start := time.Now()
			c.Close()
			select {
			case <-canceled:
				t.Logf("the node's request was canceled %v after the client left", time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatal("the node's request went on after the client left")
			}
			waitFor(t, 5*time.Second, "the access log line of the abandoned request", func() error {
				if l := log.String(); !strings.Contains(l, "id=gone-1 ") || !strings.Contains(l, " status=499 ") {
					return fmt.Errorf("log %q", l)
				}
				return nil
			})
		})
	}
}

// TestFastPathShutdownSaysClose: an answer that comes while the router shuts down says
// "Connection: close", and the connection closes after it, on both paths.
func TestFastPathShutdownSaysClose(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run(map[bool]string{false: "fast", true: "full"}[noFast], func(t *testing.T) {
			entered, release := make(chan struct{}, 1), make(chan struct{})
			slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				entered <- struct{}{}
				<-release
				_, _ = io.WriteString(w, "done")
			})
			n := staticNode(t, "n1", "/slow", slow)
			r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{n.Addr()}; o.noFast = noFast })
			c := dialRouter(t, r)
			br := bufio.NewReader(c)
			// A first answer on the connection: it stays open (keep-alive) for the second.
			_, _ = io.WriteString(c, "GET /counter/get HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.Close {
				t.Fatalf("first answer: %v %v", resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_, _ = io.WriteString(c, "GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n")
			<-entered
			shut := make(chan error, 1)
			go func() { shut <- r.Shutdown(context.Background()) }()
			waitFor(t, 5*time.Second, "the listener to close", func() error {
				d, err := net.Dial("tcp", r.Addr())
				if err == nil {
					d.Close()
					return errors.New("still accepting")
				}
				return nil
			})
			close(release)
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "done" || !resp.Close { // Close: it said "Connection: close"
				t.Fatalf("answer during shutdown: %d %q, close %v", resp.StatusCode, body, resp.Close)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("the connection stayed open after Connection: close (%v)", err)
			}
			if err := <-shut; err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{false: 2, true: 0}[noFast]; r.fastServed.Load() != want {
				t.Errorf("fast path served %d requests, want %d", r.fastServed.Load(), want)
			}
		})
	}
}

// fixedMembers is a membership that never changes.
type fixedMembers []membership.Member

func (m fixedMembers) Members() []membership.Member    { return m }
func (m fixedMembers) Events() <-chan membership.Event { return nil }

// TestFastPathAccessLogAndMetrics: a fast-path GET writes one access log line and counts in the
// metrics as the full path does; a path no node serves gets the router's 404 with the request id.
func TestFastPathAccessLogAndMetrics(t *testing.T) {
	n := staticNode(t, "n1", "/app", http.HandlerFunc(pathApp))
	members := fixedMembers{{Name: "n1", Route: "n1", Role: membership.RoleNode, State: membership.StateAlive,
		HTTPAddr: n.Addr(), Meta: membership.Meta{Apps: []membership.App{appAt("app", "/app")}}}}
	type result struct {
		lines []string
		reg   *prometheus.Registry
	}
	results := map[bool]result{}
	for _, noFast := range []bool{false, true} {
		log, reg := &testapps.SyncBuffer{}, prometheus.NewRegistry()
		r := startRouter(t, listen(t), members, func(o *Options) { o.AccessLog, o.Metrics, o.noFast = log, reg, noFast })
		c := dialRouter(t, r)
		br := bufio.NewReader(c)
		_, _ = io.WriteString(c, rq("GET", "/app/hello?x=1"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "/app/hello" {
			t.Fatalf("noFast %v: GET /app/hello: %d %q", noFast, resp.StatusCode, body)
		}
		_, _ = io.WriteString(c, rawReq("GET /elsewhere HTTP/1.1", "Host: x", "X-Request-Id: lost-1", "Traceparent: "+fpTrace))
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") != "lost-1" ||
			!strings.Contains(string(body), "no node serves this path") || !strings.Contains(string(body), "request id: lost-1") {
			t.Errorf("noFast %v: GET /elsewhere: %d id %q %q", noFast, resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
		}
		// Back to the app on the same connection (the fast path caches a connection's metric series).
		_, _ = io.WriteString(c, rawReq("GET /app/again HTTP/1.1", "Host: x", "X-Request-Id: again-1"))
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "/app/again" {
			t.Fatalf("noFast %v: GET /app/again: %d %q", noFast, resp.StatusCode, body)
		}
		if want := map[bool]int64{false: 3, true: 0}[noFast]; r.fastServed.Load() != want {
			t.Errorf("noFast %v: fast path served %d requests, want %d", noFast, r.fastServed.Load(), want)
		}
		lines := strings.Split(strings.TrimSpace(log.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("noFast %v: %d access log lines, want 3:\n%s", noFast, len(lines), log.String())
		}
		for i, want := range []string{"status=200 bytes=10 node=n1 attempts=1 ", "status=404 ", "status=200 bytes=10 node=n1 attempts=1 "} {
			if !strings.Contains(lines[i], want) {
				t.Errorf("noFast %v: access log line %q, want %q in it", noFast, lines[i], want)
			}
		}
		if !strings.Contains(lines[0], "id="+fpID+" trace=4bf92f3577b34da6a3ce929d0e0e4736 client=127.0.0.1 GET \"/app/hello?x=1\" HTTP/1.1 ") {
			t.Errorf("noFast %v: access log line %q", noFast, lines[0])
		}
		if !strings.Contains(lines[1], "node=- attempts=0 ") {
			t.Errorf("noFast %v: access log line %q", noFast, lines[1])
		}
		for i, l := range lines { // the times differ, and so does the third request's random trace: drop them
			f := strings.Fields(l)
			lines[i] = strings.Join(slices.DeleteFunc(f[1:], func(s string) bool {
				return strings.HasPrefix(s, "upstream_ms=") || strings.HasPrefix(s, "total_ms=") ||
					i == 2 && strings.HasPrefix(s, "trace=")
			}), " ")
		}
		results[noFast] = result{lines, reg}
		counts := []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"herd_router_requests_total", map[string]string{"app": "/app", "code": "200"}, 2},
			{"herd_router_requests_total", map[string]string{"app": "-", "code": "404"}, 1},
			{"herd_router_requests_total", map[string]string{}, 3},
			{"herd_router_request_duration_seconds", map[string]string{"app": "/app"}, 2},
			{"herd_router_request_duration_seconds", map[string]string{"app": "-"}, 1},
			{"herd_router_attempts_total", map[string]string{"node": "n1", "result": "ok"}, 2},
			{"herd_router_attempts_total", map[string]string{}, 2},
		}
		for _, m := range counts {
			if got := metricValue(t, reg, m.name, m.labels); got != m.want {
				t.Errorf("noFast %v: %s%v = %v, want %v", noFast, m.name, m.labels, got, m.want)
			}
		}
	}
	if f, u := results[false].lines, results[true].lines; !slices.Equal(f, u) {
		t.Errorf("access log lines differ:\nfast: %q\nfull: %q", f, u)
	}
}

// TestFastPathRetriesConnectFailure: a static node that stops listening is tried, fails to connect,
// and the request goes to the other node: every GET succeeds on the fast path.
func TestFastPathRetriesConnectFailure(t *testing.T) {
	good := staticNode(t, "good", "/echo", http.HandlerFunc(pathApp))
	// The other node answers the router's first health check, then stops listening.
	badLn := listen(t)
	var badWG sync.WaitGroup
	badWG.Add(1)
	go func() {
		defer badWG.Done()
		for {
			c, err := badLn.Accept()
			if err != nil {
				return
			}
			badWG.Add(1)
			go func() {
				defer badWG.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if _, err := readHeadLines(br); err == nil {
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	bad := badLn.Addr().String()
	reg, log := prometheus.NewRegistry(), &testapps.SyncBuffer{}
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{bad, good.Addr()}
		o.Metrics, o.AccessLog = reg, log
	})
	badLn.Close()
	badWG.Wait()
	c := dialRouter(t, r)
	br := bufio.NewReader(c)
	const requests = 8
	for i := range requests {
		r.clock.Advance(time.Minute) // the failure mark of the last round has expired: the bad node is tried again
		path := fmt.Sprintf("/echo/%d", i)
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != path {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	if got := r.fastServed.Load(); got != requests {
		t.Errorf("fast path served %d requests, want %d", got, requests)
	}
	retried := metricValue(t, reg, "herd_router_retries_total", map[string]string{"node": bad})
	failed := metricValue(t, reg, "herd_router_attempts_total", map[string]string{"node": bad, "result": "error"})
	if retried == 0 || retried != failed || !strings.Contains(log.String(), "node="+good.Addr()+" attempts=2 ") {
		t.Errorf("retries %v, failed attempts on the bad node %v; access log:\n%s", retried, failed, log.String())
	}
}

// TestFastPathClientGoneDuringInterimIsNoNodeFailure: a client that resets its connection before a
// node's 103 Early Hints is relayed makes that relay fail; the node answered correctly, so it must
// not get a failure mark nor the request a retry (the full path ignores such write errors too).
func TestFastPathClientGoneDuringInterimIsNoNodeFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.URL.Path != "/hints" { // the router's health checks
						_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					requests.Add(1)
					time.Sleep(2 * time.Millisecond) // the client's reset arrives first
					_, _ = io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
					time.Sleep(20 * time.Millisecond)
					_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	r := startRouter(t, listen(t), nil, func(o *Options) { o.Settings.Backends = []string{ln.Addr().String()} })
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /hints HTTP/1.1\r\nHost: front\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetLinger(0) // close with a reset
	c.Close()
	waitFor(t, 5*time.Second, "the request reaching the node", func() error {
		if requests.Load() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // the node's answer and the router's relay are over
	if n := requests.Load(); n != 1 {
		t.Errorf("the node got %d requests, want 1 (no retry)", n)
	}
	for _, b := range r.table.Load().backends {
		if b.state.failed(time.Now()) {
			t.Errorf("node %s was marked failed because the client went away", b.Addr)
		}
	}
	if r.fastServed.Load() != 1 {
		t.Errorf("fast path served %d requests, want 1", r.fastServed.Load())
	}
}
