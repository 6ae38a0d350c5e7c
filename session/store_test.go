package session

import (
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/herdproject/herd/session/wire"
)

type profile struct {
	Name  string
	Roles []string
	Since time.Time
}

func storeValues(now time.Time) map[any]any {
	return map[any]any{
		1:         "int key",
		"int":     42,
		"int64":   int64(1) << 40,
		"uint8":   uint8(7),
		"float":   2.5,
		"string":  "s",
		"bool":    true,
		"bytes":   []byte{1, 2},
		"time":    now,
		"strings": []string{"a", "b"},
		"map":     map[string]any{"n": 1, "f": 1.5, "l": []any{"x", int64(2)}},
		"profile": profile{Name: "ann", Roles: []string{"admin"}, Since: now},
		"ptr":     &profile{Name: "bob"},
	}
}

func TestStoreKeepsGoTypes(t *testing.T) {
	m, _ := testManager(t, nil)
	reg := wire.NewRegistry()
	if err := reg.Register("profile", profile{}); err != nil {
		t.Fatal(err)
	}
	store := NewStore(m, WithRegistry(reg))
	now := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	var mu sync.Mutex
	var loaded map[any]any
	var loadedNew bool
	mux := storeMux(t, store, now, func(v map[any]any, isNew bool) {
		mu.Lock()
		loaded, loadedNew = v, isNew
		mu.Unlock()
	})
	srv := httptest.NewServer(m.Handler("app", "/", mux))
	defer srv.Close()
	rec := record(m)

	resp, err := srv.Client().Get(srv.URL + "/save")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Cookies()[0]
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/load", nil)
	req.AddCookie(cookie)
	if resp, err = srv.Client().Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	mu.Lock()
	got, isNew := loaded, loadedNew
	mu.Unlock()
	want := storeValues(now)
	if isNew || len(got) != len(want) {
		t.Fatalf("loaded %d values (new=%v), want %d: %#v", len(got), isNew, len(want), got)
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("key %#v (%T) missing", k, k)
		}
		if reflect.TypeOf(g) != reflect.TypeOf(v) {
			t.Fatalf("key %#v: type %T, want %T", k, g, v)
		}
		if p, ok := v.(profile); ok { // msgpack gives times inside structs time.Local
			gp := g.(profile)
			if gp.Name != p.Name || !reflect.DeepEqual(gp.Roles, p.Roles) || !gp.Since.Equal(p.Since) {
				t.Fatalf("profile %#v, want %#v", gp, p)
			}
			continue
		}
		if !reflect.DeepEqual(g, v) {
			t.Fatalf("key %#v: %#v, want %#v", k, g, v)
		}
	}
	// /load deleted one key, changed one and consumed the flash: the delta
	// carries exactly that.
	ds := rec.all()
	last := ds[len(ds)-1]
	if last.Kind != KindChanged || len(last.Set) != 1 || len(last.Deleted) != 2 {
		t.Fatalf("delta of /load: set %v deleted %v", keys(last.Set), last.Deleted)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/drop", nil)
	req.AddCookie(cookie)
	if resp, err = srv.Client().Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if m.Len() != 0 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("MaxAge<0 did not invalidate: len %d cookies %v", m.Len(), resp.Cookies())
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestStoreErrors(t *testing.T) {
	m, _ := testManager(t, nil)
	other, _ := testManager(t, nil)
	store := NewStore(m)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	gs, err := store.New(r, "x")
	if !errors.Is(err, ErrNoBinding) || gs == nil {
		t.Fatalf("outside handler: %v %v", gs, err)
	}
	if err := store.Save(r, httptest.NewRecorder(), gs); !errors.Is(err, ErrNoBinding) {
		t.Fatalf("save outside handler: %v", err)
	}
	var saveErr, otherErr error
	h := m.Handler("app", "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gs, _ := store.Get(r, "x")
		type unregistered struct{ A int }
		gs.Values["u"] = unregistered{1}
		saveErr = gs.Save(r, w)
		_, otherErr = NewStore(other).New(r, "x")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if saveErr == nil || m.Len() != 0 {
		t.Fatalf("unregistered type saved: %v", saveErr)
	}
	if !errors.Is(otherErr, ErrNoBinding) {
		t.Fatalf("store of another manager: %v", otherErr)
	}
	// An empty gorilla session creates no herd session.
	h = m.Handler("app", "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gs, _ := store.Get(r, "x")
		saveErr = gs.Save(r, w)
	}))
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/", nil))
	if saveErr != nil || m.Len() != 0 || rr.Header().Get("Set-Cookie") != "" {
		t.Fatalf("empty save: %v len %d", saveErr, m.Len())
	}
}

// storeMux serves /save (stores storeValues and a flash), /load (hands the
// loaded values to capture, then deletes "bool" and changes "int") and /drop
// (MaxAge < 0).
func storeMux(t *testing.T, store *Store, now time.Time, capture func(map[any]any, bool)) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/save", func(w http.ResponseWriter, r *http.Request) {
		gs, err := store.Get(r, "app")
		if err != nil || !gs.IsNew {
			t.Errorf("get before save: %v new=%v", err, gs.IsNew)
		}
		for k, v := range storeValues(now) {
			gs.Values[k] = v
		}
		if err := gs.Save(r, w); err != nil {
			t.Errorf("save: %v", err)
		}
		flash, _ := store.Get(r, "flash")
		flash.AddFlash("hello")
		if err := flash.Save(r, w); err != nil {
			t.Errorf("save flash: %v", err)
		}
	})
	mux.HandleFunc("/load", func(w http.ResponseWriter, r *http.Request) {
		gs, err := store.Get(r, "app")
		if err != nil {
			t.Errorf("load: %v", err)
		}
		flash, _ := store.Get(r, "flash")
		if f := flash.Flashes(); len(f) != 1 || f[0] != "hello" {
			t.Errorf("flashes %#v", f)
		}
		_ = flash.Save(r, w)
		capture(maps.Clone(gs.Values), gs.IsNew)
		delete(gs.Values, "bool")
		gs.Values["int"] = 43
		_ = gs.Save(r, w)
	})
	mux.HandleFunc("/drop", func(w http.ResponseWriter, r *http.Request) {
		gs, _ := store.Get(r, "app")
		gs.Options.MaxAge = -1
		_ = gs.Save(r, w)
	})
	return mux
}
