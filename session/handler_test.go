package session

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// counterApp is an in-process app over Binding: /inc, /get, /renew,
// /logout, /big, /stream, /hijack, /late.
func counterApp() http.Handler {
	mux := http.NewServeMux()
	count := func(s *Session) int {
		v, _ := s.Get("n")
		n, _ := strconv.Atoi(string(v))
		return n
	}
	mux.HandleFunc("/inc", func(w http.ResponseWriter, r *http.Request) {
		s, err := FromRequest(r).Session(true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n := count(s) + 1
		_ = s.Set("n", []byte(strconv.Itoa(n)))
		fmt.Fprintf(w, "%s %d", s.ID(), n)
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		s, err := FromRequest(r).Session(false)
		switch {
		case errors.Is(err, ErrSkipped):
			fmt.Fprint(w, "skipped")
		case s == nil:
			fmt.Fprint(w, "none")
		default:
			fmt.Fprintf(w, "%s %d", s.ID(), count(s))
		}
	})
	mux.HandleFunc("/create-skipped", func(w http.ResponseWriter, r *http.Request) {
		_, err := FromRequest(r).Session(true)
		fmt.Fprint(w, err)
	})
	mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Renew(); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		FromRequest(r).Invalidate()
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "body first; ")
		_, err := FromRequest(r).Session(true)
		fmt.Fprint(w, err)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		s, _ := FromRequest(r).Session(true)
		_ = s.Set("streamed", []byte("yes"))
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "chunk")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = rw.Flush()
	})
	return mux
}

type env struct {
	m   *Manager
	clk *fakeClock
	srv *httptest.Server
	rec *recorder
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	m, clk := testManager(t, mod)
	e := &env{m: m, clk: clk, rec: record(m)}
	mux := http.NewServeMux()
	mux.Handle("/shop/", m.Handler("shop##1", "/shop", http.StripPrefix("/shop", counterApp())))
	mux.Handle("/", m.Handler("root", "/", counterApp()))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

type result struct {
	status  int
	body    string
	cookies []*http.Cookie
	raw     []string
}

func (e *env) get(t *testing.T, path string, hdr map[string]string, cookies ...string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if len(cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(cookies, "; "))
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, string(b), resp.Cookies(), resp.Header.Values("Set-Cookie")}
}

func (r result) session(t *testing.T) (id, route string, c *http.Cookie) {
	t.Helper()
	if len(r.cookies) != 1 {
		t.Fatalf("want one Set-Cookie, got %q", r.raw)
	}
	c = r.cookies[0]
	id, route, err := ParseCookieValue(c.Value)
	if err != nil {
		t.Fatalf("cookie %q: %v", c.Value, err)
	}
	return id, route, c
}

func TestHandlerCreatesAndFinds(t *testing.T) {
	e := newEnv(t, nil)
	r := e.get(t, "/shop/get", nil)
	if r.body != "none" || len(r.raw) != 0 || e.m.Len() != 0 {
		t.Fatalf("read without session: %+v", r)
	}
	r = e.get(t, "/shop/inc", nil)
	id, route, c := r.session(t)
	if route != "node1" || c.Name != "JSESSIONID" || c.Path != "/shop" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Fatalf("cookie %+v", c)
	}
	if r.body != id+" 1" {
		t.Fatalf("body %q", r.body)
	}
	cookie := "JSESSIONID=" + c.Value
	r = e.get(t, "/shop/inc", nil, cookie)
	if r.body != id+" 2" || len(r.raw) != 0 {
		t.Fatalf("second request %+v", r)
	}
	s, _ := e.m.Get(id)
	if s.App() != "shop##1" || s.Version() != 2 {
		t.Fatalf("session app %q v%d", s.App(), s.Version())
	}
	if got := e.rec.kinds(); len(got) != 2 || got[0] != KindCreated || got[1] != KindChanged {
		t.Fatalf("deltas %v", got)
	}
	// The same cookie on another app's path names no session there.
	if r = e.get(t, "/get", nil, cookie); r.body != "none" {
		t.Fatalf("cross-app lookup: %q", r.body)
	}
	// Read-only requests commit nothing.
	e.get(t, "/shop/get", nil, cookie)
	if len(e.rec.all()) != 2 {
		t.Fatalf("read-only request emitted %v", e.rec.kinds())
	}
}

func TestForgedAndFixatedCookies(t *testing.T) {
	e := newEnv(t, nil)
	chosen := strings.Repeat("A", IDLength)
	for _, v := range []string{chosen + ".node1", "garbage", chosen + ".evil/route", strings.Repeat("x", 4000), ""} {
		r := e.get(t, "/shop/inc", nil, "JSESSIONID="+v)
		if r.status != http.StatusOK {
			t.Fatalf("cookie %.20q: status %d", v, r.status)
		}
		id, _, _ := r.session(t)
		if id == chosen || !strings.HasSuffix(r.body, " 1") {
			t.Fatalf("cookie %.20q: got id %q body %q", v, id, r.body)
		}
	}
}

func TestNestedCookies(t *testing.T) {
	e := newEnv(t, nil)
	rootID, _, rc := e.get(t, "/inc", nil).session(t)
	shopID, _, sc := e.get(t, "/shop/inc", nil).session(t)
	// Browser order: most specific path first, but any order must work.
	for _, cookies := range [][]string{
		{"JSESSIONID=" + sc.Value, "JSESSIONID=" + rc.Value},
		{"JSESSIONID=" + rc.Value, "JSESSIONID=junk", "JSESSIONID=" + sc.Value},
	} {
		if r := e.get(t, "/shop/get", nil, cookies...); r.body != shopID+" 1" {
			t.Fatalf("shop saw %q", r.body)
		}
		if r := e.get(t, "/get", nil, cookies...); r.body != rootID+" 1" {
			t.Fatalf("root saw %q", r.body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Cookie", "JSESSIONID="+sc.Value+"; JSESSIONID="+rc.Value+"; JSESSIONID="+sc.Value)
	got := e.m.Sessions(req)
	if len(got) != 2 || got[0].App() != "shop##1" || got[1].App() != "root" {
		t.Fatalf("Sessions: %v", got)
	}
}

func TestSecureCookie(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	untrusted := newEnv(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	tests := []struct {
		name   string
		e      *env
		proto  string
		secure bool
	}{
		{"trusted https", e, "https", true},
		{"trusted https list", e, "HTTPS, http", true},
		{"trusted http", e, "http", false},
		{"no header", e, "", false},
		{"untrusted https", untrusted, "https", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.proto != "" {
				hdr["X-Forwarded-Proto"] = tc.proto
			}
			_, _, c := tc.e.get(t, "/inc", hdr).session(t)
			if c.Secure != tc.secure {
				t.Fatalf("Secure = %v", c.Secure)
			}
		})
	}
	// Real TLS.
	m, _ := testManager(t, nil)
	srv := httptest.NewTLSServer(m.Handler("root", "/", counterApp()))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/inc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure {
		t.Fatalf("TLS cookie %v", resp.Cookies())
	}
}

func TestRouteRebind(t *testing.T) {
	e := newEnv(t, nil)
	id, _, c := e.get(t, "/inc", nil).session(t)
	// A request that failed over from node2 carries node2's route.
	r := e.get(t, "/get", nil, "JSESSIONID="+id+".node2")
	gotID, route, _ := r.session(t)
	if gotID != id || route != "node1" || r.body != id+" 1" {
		t.Fatalf("rebind: %q %q %q", gotID, route, r.body)
	}
	if r := e.get(t, "/get", nil, "JSESSIONID="+c.Value); len(r.raw) != 0 {
		t.Fatalf("matching route rewritten: %q", r.raw)
	}
}

func TestRenewInvalidate(t *testing.T) {
	e := newEnv(t, nil)
	id, _, c := e.get(t, "/inc", nil).session(t)
	r := e.get(t, "/renew", nil, "JSESSIONID="+c.Value)
	nid, _, nc := r.session(t)
	if nid == id || r.status != http.StatusOK {
		t.Fatalf("renew kept id: %+v", r)
	}
	if r := e.get(t, "/get", nil, "JSESSIONID="+c.Value); r.body != "none" {
		t.Fatalf("old id still works: %q", r.body)
	}
	if r := e.get(t, "/get", nil, "JSESSIONID="+nc.Value); r.body != nid+" 1" {
		t.Fatalf("new id: %q", r.body)
	}
	if r := e.get(t, "/renew", nil); r.status != http.StatusConflict || !strings.Contains(r.body, "no session") {
		t.Fatalf("renew without session: %+v", r)
	}
	r = e.get(t, "/logout", nil, "JSESSIONID="+nc.Value)
	if len(r.cookies) != 1 || r.cookies[0].MaxAge >= 0 || r.cookies[0].Value != "" || r.cookies[0].Path != "/" {
		t.Fatalf("logout cookie %q", r.raw)
	}
	if e.m.Len() != 0 {
		t.Fatal("session survived logout")
	}
	kinds := e.rec.kinds()
	if kinds[len(kinds)-2] != KindIDChanged || kinds[len(kinds)-1] != KindInvalidated {
		t.Fatalf("deltas %v", kinds)
	}
}

func TestExpiryOverHTTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxInactive = time.Minute })
	id, _, c := e.get(t, "/inc", nil).session(t)
	e.clk.Advance(59 * time.Second)
	e.get(t, "/get", nil, "JSESSIONID="+c.Value) // access keeps it alive
	e.clk.Advance(59 * time.Second)
	if r := e.get(t, "/get", nil, "JSESSIONID="+c.Value); r.body != id+" 1" {
		t.Fatalf("expired despite access: %q", r.body)
	}
	e.clk.Advance(61 * time.Second)
	r := e.get(t, "/inc", nil, "JSESSIONID="+c.Value)
	nid, _, _ := r.session(t)
	if nid == id || r.body != nid+" 1" {
		t.Fatalf("expired session reused: %q", r.body)
	}
}

func TestSkip(t *testing.T) {
	m, _ := testManager(t, nil)
	rec := record(m)
	h := m.Handler("root", "/", counterApp())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "-skip") {
			r = Skip(r)
			r.URL.Path = strings.TrimSuffix(r.URL.Path, "-skip")
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/inc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := resp.Cookies()[0]
	before := len(rec.all())
	for _, path := range []string{"/get-skip", "/create-skipped-skip"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: c.Name, Value: strings.Split(c.Value, ".")[0] + ".node9"})
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(resp.Cookies()) != 0 || !strings.Contains(string(b), "skipped") {
			t.Fatalf("%s: cookies %v body %q", path, resp.Cookies(), b)
		}
	}
	if len(rec.all()) != before || m.Len() != 1 {
		t.Fatalf("skipped requests changed the store: %v", rec.kinds())
	}
	if !Skipped(Skip(httptest.NewRequest(http.MethodGet, "/", nil))) || Skipped(httptest.NewRequest(http.MethodGet, "/", nil)) {
		t.Fatal("Skipped")
	}
}

func TestWriterPassThrough(t *testing.T) {
	e := newEnv(t, nil)
	r := e.get(t, "/stream", nil)
	if _, _, c := r.session(t); c == nil || r.body != "chunk" {
		t.Fatalf("stream %+v", r)
	}
	r = e.get(t, "/late", nil)
	if !strings.Contains(r.body, ErrHeadersWritten.Error()) || len(r.raw) != 0 {
		t.Fatalf("late creation: %+v", r)
	}
	r = e.get(t, "/hijack", nil)
	if r.body != "hijacked" {
		t.Fatalf("hijack: %+v", r)
	}
}

func TestNilBinding(t *testing.T) {
	var b *Binding
	if _, err := b.Session(true); !errors.Is(err, ErrNoBinding) {
		t.Fatal(err)
	}
	b.Invalidate()
	if b.Renew() == nil || b.ProxyRequest(http.Header{}) == nil {
		t.Fatal("nil binding accepted work")
	}
	if FromRequest(httptest.NewRequest(http.MethodGet, "/", nil)) != nil {
		t.Fatal("binding outside a handler")
	}
}

func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, nil)
	b := newEnv(t, func(o *Options) { o.Route = "node2" }) // replica fed by e's deltas
	e.m.Subscribe(func(d Delta) {
		if err := b.m.ApplyRemote(d); err != nil {
			t.Errorf("apply: %v", err)
		}
	})
	_, _, c := e.get(t, "/inc", nil).session(t)
	cookie := "JSESSIONID=" + c.Value
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				path := "/get"
				if i%2 == 0 {
					path = "/inc"
				}
				if r := e.get(t, path, nil, cookie); r.status != http.StatusOK {
					t.Errorf("goroutine %d: %+v", g, r)
				}
				e.get(t, "/inc", nil) // and some new sessions
			}
		}()
	}
	wg.Wait()
	id, _, _ := ParseCookieValue(c.Value)
	s, _ := e.m.Get(id)
	r, ok := b.m.Get(id)
	if !ok {
		t.Fatal("no replica")
	}
	sameState(t, s, r)
	if e.m.Len() != 81 || b.m.Len() != 81 {
		t.Fatalf("sessions: %d local, %d replicated", e.m.Len(), b.m.Len())
	}
	// Versions of one session were emitted strictly in order.
	last := uint64(0)
	for _, d := range e.rec.all() {
		if d.ID == id && d.Kind != KindTouched {
			if d.Version != last+1 {
				t.Fatalf("version %d after %d", d.Version, last)
			}
			last = d.Version
		}
	}
}

// The hijacked writer must still answer HTTP/1.1 clients that read raw.
func TestHijackRaw(t *testing.T) {
	e := newEnv(t, nil)
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hijacked" || len(resp.Cookies()) != 0 {
		t.Fatalf("raw hijack: %q %v", b, resp.Cookies())
	}
}
