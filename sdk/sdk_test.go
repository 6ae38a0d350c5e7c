package sdk

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/session"
	"github.com/herdproject/herd/session/wire"
)

type user struct {
	Name  string
	Admin bool
}

func registry(t *testing.T) *wire.Registry {
	t.Helper()
	r := wire.NewRegistry()
	if err := r.Register("user", user{}); err != nil {
		t.Fatal(err)
	}
	return r
}

// request builds a request carrying a session with the given gorilla values.
func request(t *testing.T, reg *wire.Registry, name string, values map[any]any, extra map[string][]byte) *http.Request {
	t.Helper()
	attrs, err := reg.EncodeValues(name, values)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		attrs[k] = v
	}
	h, err := wire.EncodeRequest(wire.SessionView{ID: "sid123", Created: time.Now(), LastAccess: time.Now(),
		MaxInactive: time.Minute, Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(wire.RequestHeader, h)
	return r
}

func update(t *testing.T, w *httptest.ResponseRecorder) wire.Update {
	t.Helper()
	h := w.Header().Get(wire.UpdateHeader)
	if h == "" {
		return wire.Update{}
	}
	u, err := wire.DecodeUpdate(h)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(u.Delete)
	return u
}

func TestStoreReadsAndDiffs(t *testing.T) {
	reg := registry(t)
	st := NewStore(Options{Registry: reg})
	r := request(t, reg, "app", map[any]any{"count": 3, 7: user{Name: "ann"}, "gone": "x", "same": []string{"a"}},
		map[string][]byte{"foreign": []byte("other app data")})
	s, err := st.Get(r, "app")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "sid123" || s.IsNew {
		t.Fatalf("id %q new %v", s.ID, s.IsNew)
	}
	if s.Values["count"] != 3 || s.Values[7] != (user{Name: "ann"}) || !reflect.DeepEqual(s.Values["same"], []string{"a"}) {
		t.Fatalf("values %#v", s.Values)
	}
	if again, _ := st.Get(r, "app"); again != s {
		t.Fatal("not cached per request")
	}
	s.Values["count"] = 4
	delete(s.Values, "gone")
	s.Values["new"] = true
	w := httptest.NewRecorder()
	if err := s.Save(r, w); err != nil {
		t.Fatal(err)
	}
	u := update(t, w)
	if len(u.Set) != 2 || !reflect.DeepEqual(u.Delete, []string{"app|gone"}) || u.Renew || u.Invalidate {
		t.Fatalf("update %+v", u)
	}
	if v, _ := reg.DecodeValue(u.Set["app|count"]); v != 4 {
		t.Fatalf("count %v", v)
	}
	// A second named session merges into the same header; renew rides along.
	f, _ := st.Get(r, "flash")
	f.AddFlash("hi")
	Renew(f)
	if err := f.Save(r, w); err != nil {
		t.Fatal(err)
	}
	u = update(t, w)
	if len(u.Set) != 3 || !u.Renew || len(u.Delete) != 1 {
		t.Fatalf("merged update %+v", u)
	}
	if _, marker := f.Values[renewKey{}]; marker {
		t.Fatal("renew marker left in values")
	}
	// Saving again without change adds nothing.
	if err := s.Save(r, w); err != nil {
		t.Fatal(err)
	}
	if u2 := update(t, w); len(u2.Set) != 3 || len(u2.Delete) != 1 {
		t.Fatalf("idempotent save changed the update: %+v", u2)
	}
}

func TestStoreInvalidateAndNoSession(t *testing.T) {
	st := NewStore(Options{})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	s, err := st.New(r, "app")
	if err != nil || !s.IsNew || s.ID != "" || len(s.Values) != 0 {
		t.Fatalf("no header: %+v %v", s, err)
	}
	w := httptest.NewRecorder()
	if err := s.Save(r, w); err != nil || w.Header().Get(wire.UpdateHeader) != "" {
		t.Fatalf("empty save wrote %q (%v)", w.Header().Get(wire.UpdateHeader), err)
	}
	s.Values["k"] = "v"
	_ = s.Save(r, w)
	if u := update(t, w); len(u.Set) != 1 {
		t.Fatalf("create: %+v", u)
	}
	s.Options.MaxAge = -1
	_ = s.Save(r, w)
	if u := update(t, w); !u.Invalidate || len(u.Set) != 0 {
		t.Fatalf("invalidate: %+v", u)
	}
	bad := httptest.NewRequest(http.MethodGet, "/", nil)
	bad.Header.Set(wire.RequestHeader, "garbage!")
	if _, err := st.New(bad, "app"); err == nil || !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("garbage header: %v", err)
	}
	type unregistered struct{}
	s2, _ := st.New(httptest.NewRequest(http.MethodGet, "/", nil), "x")
	s2.Values["u"] = unregistered{}
	if err := s2.Save(r, httptest.NewRecorder()); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("unregistered: %v", err)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv(EnvPort, "8123")
	t.Setenv(EnvNode, "node7")
	t.Setenv(EnvContext, "/counter")
	if a, err := ListenAddr(); err != nil || a != "127.0.0.1:8123" || NodeName() != "node7" || ContextPath() != "/counter" || Port() != "8123" {
		t.Fatalf("env: %q %v", a, err)
	}
	for _, p := range []string{"", "http", "0", "70000"} {
		t.Setenv(EnvPort, p)
		if _, err := ListenAddr(); err == nil || !strings.Contains(err.Error(), "PORT") {
			t.Fatalf("PORT=%q: %v", p, err)
		}
	}
}

// TestBehindRealNode runs an sdk app behind session.Manager and a reverse
// proxy on real sockets, as the herd node does.
func TestBehindRealNode(t *testing.T) {
	reg := registry(t)
	st := NewStore(Options{Registry: reg})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "c")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n, _ := s.Values["n"].(int)
		switch r.URL.Path {
		case "/inc":
			n++
			s.Values["n"] = n
			s.Values["u"] = user{Name: "ann"}
		case "/login":
			Renew(s)
		case "/logout":
			s.Options.MaxAge = -1
		}
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s %d", s.ID, n)
	}))
	defer app.Close()
	target, _ := url.Parse(app.URL)
	m, err := session.NewManager(session.Options{Route: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			_ = session.FromRequest(pr.In).ProxyRequest(pr.Out.Header)
		},
		ModifyResponse: func(resp *http.Response) error {
			return session.FromRequest(resp.Request).ProxyResponse(resp.Header)
		},
	}
	node := httptest.NewServer(m.Handler("c", "/", proxy))
	defer node.Close()

	var cookie *http.Cookie
	get := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, node.URL+path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := node.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if cs := resp.Cookies(); len(cs) == 1 {
			cookie = cs[0]
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := get("/inc")
	id, _, _ := session.ParseCookieValue(cookie.Value)
	if first != id+" 1" {
		t.Fatalf("first inc %q, cookie id %s", first, id)
	}
	if got := get("/inc"); got != id+" 2" {
		t.Fatalf("second inc %q", got)
	}
	get("/login")
	nid, _, _ := session.ParseCookieValue(cookie.Value)
	if got := get("/inc"); nid == id || got != nid+" 3" {
		t.Fatalf("after login %q (id %s -> %s)", got, id, nid)
	}
	get("/logout")
	if m.Len() != 0 || cookie.MaxAge >= 0 {
		t.Fatalf("logout: %d sessions, cookie %v", m.Len(), cookie)
	}
}
