package router

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/session"
)

const sid = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // a well-formed session id (32 base64url characters)

func TestSessionCookie(t *testing.T) {
	known := func(r string) bool { return r == "node2" }
	for _, tc := range []struct {
		name, header, id, route string
	}{
		{"plain", "JSESSIONID=" + sid + ".node1", sid, "node1"},
		{"no route", "JSESSIONID=" + sid, sid, ""},
		{"among others", "a=b; JSESSIONID=" + sid + ".node1; c=d", sid, "node1"},
		{"quoted", `JSESSIONID="` + sid + `.node1"`, sid, "node1"},
		{"known route preferred", "JSESSIONID=" + sid + ".node1; JSESSIONID=" + sid + ".node2", sid, "node2"},
		{"malformed skipped", "JSESSIONID=garbage; JSESSIONID=" + sid + ".node1", sid, "node1"},
		{"other name", "SESSION=" + sid + ".node1", "", ""},
		{"empty route", "JSESSIONID=" + sid + ".", "", ""},
		{"too long", "JSESSIONID=" + sid + "." + strings.Repeat("n", 100), "", ""},
		{"empty", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Cookie": {tc.header}}
			id, route := sessionCookie(h, "JSESSIONID", known)
			if id != tc.id || route != tc.route {
				t.Fatalf("got (%q, %q), want (%q, %q)", id, route, tc.id, tc.route)
			}
		})
	}
	id, route, ok := setCookieSession("JSESSIONID="+sid+".node3; Path=/counter; HttpOnly", "JSESSIONID")
	if !ok || id != sid || route != "node3" {
		t.Fatalf("Set-Cookie parse: %q %q %v", id, route, ok)
	}
	if _, _, ok := setCookieSession("JSESSIONID=; Max-Age=0", "JSESSIONID"); ok {
		t.Fatal("an expiring cookie is no session")
	}
}

func TestTraceparentParsing(t *testing.T) {
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{good, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra", true},
		{good + "-extra", false}, // version 00 has exactly four fields
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", false},
		{"", false},
	} {
		_, _, _, ok := parseTraceparent(tc.in)
		if ok != tc.ok {
			t.Errorf("parseTraceparent(%q) ok=%v, want %v", tc.in, ok, tc.ok)
		}
	}
	if _, _, s, ok := parseB3Single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0-05e3ac9a4f6e3b90"); !ok || s {
		t.Error("b3 single with parent and sampled=0")
	}
	for _, bad := range []string{"1", "d", "x-y", "80f198ee56343ba8-e457b5a2e4d86bd1-7", "80f198ee56343ba8-0000000000000000"} {
		if _, _, _, ok := parseB3Single(bad); ok {
			t.Errorf("parseB3Single(%q) accepted", bad)
		}
	}
	t1, t2 := newTrace(traceIn{}), newTrace(traceIn{})
	if t1.traceID == t2.traceID || !validTraceID(t1.traceID) || !validSpanID(t1.span) || t1.parent != "" {
		t.Fatalf("new traces %+v %+v", t1, t2)
	}
}

func TestAccessLogLine(t *testing.T) {
	n := staticNode(t, "n1")
	var buf testapps.SyncBuffer
	r := startRouter(t, listen(t), nil, func(o *Options) {
		o.Settings.Backends = []string{n.Addr()}
		o.AccessLog = &buf
	})
	get(t, newClient(t), r.url+"/counter/get?x=1", "X-Request-Id", "log-1")
	line := buf.String()
	for _, want := range []string{" id=log-1 ", " trace=", " client=127.0.0.1 ", ` GET "/counter/get?x=1" HTTP/1.1`,
		" status=200 ", " node=" + n.Addr(), " attempts=1 ", " upstream_ms=", " total_ms="} {
		if !strings.Contains(line, want) {
			t.Errorf("access log %q lacks %q", line, want)
		}
	}
}

// Fuzz targets: the decoders of client input never panic and agree with their contracts.

func FuzzSessionCookie(f *testing.F) {
	for _, s := range []string{"JSESSIONID=" + sid + ".node1", `a=b; JSESSIONID="` + sid + `"`, "JSESSIONID=x.y.z",
		";;=;", "JSESSIONID=" + sid + ".n;JSESSIONID=" + sid + ".m", "JSESSIONID= " + sid + " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, route := sessionCookie(http.Header{"Cookie": {header}}, "JSESSIONID", func(r string) bool { return len(r)%2 == 0 })
		if id == "" {
			if route != "" {
				t.Fatalf("route %q without id", route)
			}
			return
		}
		gotID, gotRoute, err := session.ParseCookieValue(session.FormatCookieValue(id, route))
		if err != nil || gotID != id || gotRoute != route || !strings.Contains(header, id) {
			t.Fatalf("sessionCookie(%q) = (%q, %q), not a valid cookie of the header: %v", header, id, route, err)
		}
		if _, _, ok := setCookieSession(header, "JSESSIONID"); ok && !strings.Contains(header, "JSESSIONID") {
			t.Fatal("Set-Cookie parse invented a cookie")
		}
	})
}

func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x", "ff-", "00-0-0-0"} {
		f.Add(s, "463ac35c9f6413ad-a2fb4a1d1a96d312-1")
	}
	f.Fuzz(func(t *testing.T, tp, b3 string) {
		if trace, parent, _, ok := parseTraceparent(tp); ok && (!validTraceID(trace) || len(trace) != 32 || !validSpanID(parent)) {
			t.Fatalf("accepted %q with ids %q %q", tp, trace, parent)
		}
		if trace, span, _, ok := parseB3Single(b3); ok && (!validTraceID(trace) || !validSpanID(span)) {
			t.Fatalf("accepted b3 %q", b3)
		}
		h := http.Header{hdrTraceparent: {tp}, hdrB3: {b3}, hdrB3TraceID: {b3}, hdrB3SpanID: {tp}}
		tc := newTrace(traceOf(h))
		out := http.Header{}
		tc.apply(&reqState{}, out)
		if _, _, _, ok := parseTraceparent(out.Get(hdrTraceparent)); !ok {
			t.Fatalf("emitted an invalid traceparent %q for input %q / %q", out.Get(hdrTraceparent), tp, b3)
		}
		if !validTraceID(out.Get(hdrB3TraceID)) || !validSpanID(out.Get(hdrB3SpanID)) {
			t.Fatalf("emitted invalid B3 ids %v", out)
		}
	})
}

// TestPutHex: the eight-at-a-time hex writer agrees with strconv on edge and random values, and
// newIDs gives 48 hex digits with neither id all zero.
func TestPutHex(t *testing.T) {
	vals := []uint64{0, 1, 9, 10, 15, 16, 0x9a, 0xa9, 0xffffffff, 1 << 32, 0x0123456789abcdef, 0xfedcba9876543210, math.MaxUint64}
	for range 10000 {
		vals = append(vals, rand.Uint64())
	}
	var b [16]byte
	for _, v := range vals {
		putHex(b[:], v)
		want := strconv.FormatUint(v, 16)
		want = strings.Repeat("0", 16-len(want)) + want
		if string(b[:]) != want {
			t.Fatalf("putHex(%#x) = %q, want %q", v, b[:], want)
		}
	}
	for range 100 {
		ids := newIDs()
		if len(ids) != 48 || strings.Trim(ids, "0123456789abcdef") != "" {
			t.Fatalf("newIDs() = %q", ids)
		}
		if strings.Trim(ids[:32], "0") == "" || strings.Trim(ids[32:], "0") == "" {
			t.Fatalf("newIDs() has an all-zero id: %q", ids)
		}
	}
}
