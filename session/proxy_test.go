package session

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/herdproject/herd/session/wire"
)

// foreignApp speaks the header protocol by hand, as an app in another
// language would. It answers JSON {"id","new","count","forged"}.
func foreignApp(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var view wire.SessionView
		if h := r.Header.Get(wire.RequestHeader); h != "" {
			var err error
			if view, err = wire.DecodeRequest(h); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		count, _ := strconv.Atoi(string(view.Attrs["count"]))
		var u wire.Update
		switch r.URL.Path {
		case "/inc":
			count++
			u.Set = map[string][]byte{"count": []byte(strconv.Itoa(count))}
		case "/login":
			u.Set, u.Renew = map[string][]byte{"user": []byte("ann")}, true
		case "/logout":
			u.Invalidate = true
		case "/logout-and-flash":
			u.Invalidate, u.Set = true, map[string][]byte{"flash": []byte("bye")}
		case "/garbage":
			w.Header().Set(wire.UpdateHeader, "%%%")
		case "/big":
			u.Set = map[string][]byte{"big": make([]byte, 25<<10)}
		}
		if !u.IsZero() {
			v, err := wire.EncodeUpdate(u)
			if err != nil {
				t.Errorf("encode update: %v", err)
			}
			w.Header().Set(wire.UpdateHeader, v)
		}
		w.Header().Set("Herd-Session-Debug", "internal")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": view.ID, "new": view.New, "count": count,
			"forged": r.Header.Get("Herd-Session-Extra") != "",
		})
	}))
}

func newProxyEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	app := foreignApp(t)
	t.Cleanup(app.Close)
	target, _ := url.Parse(app.URL)
	m, clk := testManager(t, mod)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if err := FromRequest(pr.In).ProxyRequest(pr.Out.Header); err != nil {
				t.Logf("proxy request: %v", err)
				pr.Out.Header.Set("X-Session-Error", err.Error())
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			return FromRequest(resp.Request).ProxyResponse(resp.Header)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	e := &env{m: m, clk: clk, rec: record(m)}
	e.srv = httptest.NewServer(m.Handler("py", "/", proxy))
	t.Cleanup(e.srv.Close)
	return e
}

type appAnswer struct {
	ID     string
	New    bool
	Count  int
	Forged bool
}

func (r result) answer(t *testing.T) appAnswer {
	t.Helper()
	var a appAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("app answer %q: %v", r.body, err)
	}
	return a
}

func TestProxyProtocol(t *testing.T) {
	e := newProxyEnv(t, nil)
	// A read without a session: the app is offered a tentative one, stores
	// nothing, and no session or cookie remains.
	r := e.get(t, "/get", nil)
	if a := r.answer(t); !a.New || a.ID == "" || len(r.raw) != 0 || e.m.Len() != 0 {
		t.Fatalf("tentative: %+v cookies %q len %d", a, r.raw, e.m.Len())
	}
	// The first increment keeps the offered session: its id is the cookie's.
	r = e.get(t, "/inc", map[string]string{"Herd-Session-Extra": "forged", wire.RequestHeader: "forged"})
	a := r.answer(t)
	id, _, c := r.session(t)
	if a.ID != id || !a.New || a.Count != 1 || a.Forged {
		t.Fatalf("first inc %+v (cookie id %s)", a, id)
	}
	for name := range map[string]bool{wire.UpdateHeader: true, "Herd-Session-Debug": true} {
		if strings.Contains(strings.Join(r.raw, ""), name) {
			t.Fatalf("%s leaked", name)
		}
	}
	cookie := "JSESSIONID=" + c.Value
	r = e.get(t, "/inc", nil, cookie)
	if a := r.answer(t); a.ID != id || a.New || a.Count != 2 || len(r.raw) != 0 {
		t.Fatalf("second inc %+v %q", a, r.raw)
	}
	// Login: set + renew.
	r = e.get(t, "/login", nil, cookie)
	nid, _, nc := r.session(t)
	s, ok := e.m.Get(nid)
	if nid == id || !ok {
		t.Fatal("renew")
	}
	if v, _ := s.Get("user"); string(v) != "ann" {
		t.Fatalf("user %q", v)
	}
	// Logout with a flash: the old session ends, a new one holds the flash.
	r = e.get(t, "/logout-and-flash", nil, "JSESSIONID="+nc.Value)
	fid, _, _ := r.session(t)
	f, ok := e.m.Get(fid)
	if fid == nid || !ok || f.Len() != 1 {
		t.Fatalf("flash session: %v %v", fid, ok)
	}
	if _, ok := e.m.Get(nid); ok {
		t.Fatal("logged-out session alive")
	}
	// Plain logout expires the cookie.
	r = e.get(t, "/logout", nil, "JSESSIONID="+FormatCookieValue(fid, "node1"))
	if len(r.cookies) != 1 || r.cookies[0].MaxAge >= 0 || e.m.Len() != 0 {
		t.Fatalf("logout: %q len %d", r.raw, e.m.Len())
	}
	// Login's change rides in the idchanged delta's full state.
	want := []Kind{KindCreated, KindChanged, KindIDChanged, KindInvalidated, KindCreated, KindInvalidated}
	if got := e.rec.kinds(); !slices.Equal(got, want) {
		t.Fatalf("deltas %v, want %v", got, want)
	}
}

func TestProxyErrors(t *testing.T) {
	e := newProxyEnv(t, func(o *Options) { o.MaxSize = 20 << 10 })
	r := e.get(t, "/garbage", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, wire.UpdateHeader) || len(r.raw) != 0 || e.m.Len() != 0 {
		t.Fatalf("garbage update: %+v len %d", r, e.m.Len())
	}
	r = e.get(t, "/big", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "limit") {
		t.Fatalf("too large update: %+v", r)
	}
	// A session too big for the header is reported, not truncated.
	s, _ := e.m.Create("py")
	_ = s.Set("a", make([]byte, 19<<10))
	s.Commit()
	b := &Binding{m: e.m, app: "py", sess: s}
	b.m.opts.MaxSize = 1 << 20
	_ = s.Set("b", make([]byte, 40<<10))
	h := http.Header{wire.RequestHeader: {"forged"}}
	if err := b.ProxyRequest(h); !errors.Is(err, wire.ErrTooLarge) || h.Get(wire.RequestHeader) != "" {
		t.Fatalf("oversize header: %v %v", err, h)
	}
	if err := b.ProxyResponse(http.Header{wire.UpdateHeader: {"a", "b"}}); err == nil {
		t.Fatal("two update headers accepted")
	}
}
