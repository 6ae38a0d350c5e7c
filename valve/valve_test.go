package valve

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/session"
)

func serve(t *testing.T, h http.Handler, req *http.Request) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req.URL.Scheme, req.URL.Host, req.RequestURI = "http", srv.Listener.Addr().String(), ""
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestRequestIDKeepsSaneAndReplacesBadIDs(t *testing.T) {
	var seen string
	h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = InfoFrom(r.Context()).ID
	}), RequestID(nil))
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set(RequestIDHeader, "abc-123.x")
	if resp := serve(t, h, req); seen != "abc-123.x" || resp.Header.Get(RequestIDHeader) != "abc-123.x" {
		t.Fatalf("sane id not kept: %q %q", seen, resp.Header.Get(RequestIDHeader))
	}
	for _, bad := range []string{"", "a b", strings.Repeat("x", 129), "<script>"} {
		req := httptest.NewRequest("GET", "/x", nil)
		if bad != "" {
			req.Header.Set(RequestIDHeader, bad)
		}
		resp := serve(t, h, req)
		if seen == bad || len(seen) != 32 || resp.Header.Get(RequestIDHeader) != seen {
			t.Fatalf("id %q: got %q", bad, seen)
		}
	}
}

func TestAccessLogFormats(t *testing.T) {
	for _, tc := range []struct {
		format AccessLogFormat
		want   *regexp.Regexp
	}{
		{FormatCommon, regexp.MustCompile(`^127\.0\.0\.1 - bob \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\?b=1 HTTP/1\.1" 201 5\n$`)},
		{FormatCombined, regexp.MustCompile(`^127\.0\.0\.1 - bob \[.+\] "GET /a\?b=1 HTTP/1\.1" 201 5 "http://ref/" "agent \\"x\\""\n$`)},
	} {
		var out bytes.Buffer
		h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			_, _ = io.WriteString(w, "hello")
		}), RequestID(func() time.Time { return time.Now() }), AccessLog(tc.format, &out))
		req := httptest.NewRequest("GET", "/a?b=1", nil)
		req.SetBasicAuth("bob", "pw")
		req.Header.Set("Referer", "http://ref/")
		req.Header.Set("User-Agent", `agent "x"`)
		serve(t, h, req)
		if !tc.want.MatchString(out.String()) {
			t.Errorf("%s line %q does not match %s", tc.format, out.String(), tc.want)
		}
	}
	if AccessLog(FormatOff, io.Discard) != nil {
		t.Fatal("off format built a valve")
	}
	if _, err := ParseAccessLogFormat("fancy"); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestRemoteAddr(t *testing.T) {
	lo := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	if resp := serve(t, Chain(ok, RemoteAddr(lo, nil)), httptest.NewRequest("GET", "/", nil)); resp.StatusCode != 200 {
		t.Fatalf("allowed client got %d", resp.StatusCode)
	}
	if resp := serve(t, Chain(ok, RemoteAddr(lo, lo)), httptest.NewRequest("GET", "/", nil)); resp.StatusCode != 403 {
		t.Fatalf("denied client got %d", resp.StatusCode)
	}
	other := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if resp := serve(t, Chain(ok, RemoteAddr(other, nil)), httptest.NewRequest("GET", "/", nil)); resp.StatusCode != 403 {
		t.Fatalf("client outside allow got %d", resp.StatusCode)
	}
	if !Permitted("[::ffff:127.0.0.1]:80", lo, nil) || Permitted("garbage", lo, nil) {
		t.Fatal("Permitted address parsing")
	}
}

func TestRecoverAnswers500(t *testing.T) {
	var logs bytes.Buffer
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
		RequestID(nil), Recover(slog.New(slog.NewTextHandler(&logs, nil))))
	resp := serve(t, h, httptest.NewRequest("GET", "/", nil))
	if resp.StatusCode != 500 || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("status %d, log %q", resp.StatusCode, logs.String())
	}
}

func TestReplicationFilterSkipsSessions(t *testing.T) {
	var skipped, filtered bool
	h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		skipped, filtered = session.Skipped(r), InfoFrom(r.Context()).Filtered
	}), RequestID(nil), Replication(regexp.MustCompile(DefaultFilter)))
	for path, want := range map[string]bool{"/app/logo.png": true, "/app/site.css": true, "/app/page": false, "/app/x.pngx": false} {
		serve(t, h, httptest.NewRequest("GET", path, nil))
		if skipped != want || filtered != want {
			t.Errorf("%s: skipped %v filtered %v, want %v", path, skipped, filtered, want)
		}
	}
}
