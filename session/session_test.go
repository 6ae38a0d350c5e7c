package session

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestNewIDShape(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !ValidID(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestParseCookieValue(t *testing.T) {
	id := newID()
	tests := []struct {
		in, id, route string
		ok            bool
	}{
		{id + ".node1", id, "node1", true},
		{id, id, "", true},
		{id + ".node-2.eu_west", id, "node-2.eu_west", true},
		{id + ".", "", "", false},
		{id + "x.node1", "", "", false},
		{id[:31] + ".node1", "", "", false},
		{"", "", "", false},
		{"short", "", "", false},
		{strings.Repeat("A", 31) + "!", "", "", false},
		{id + ".bad/route", "", "", false},
		{id + "." + strings.Repeat("r", MaxRouteLength+1), "", "", false},
		{strings.Repeat("x", 10000), "", "", false},
		{id + ".nöde", "", "", false},
	}
	for _, tc := range tests {
		gotID, gotRoute, err := ParseCookieValue(tc.in)
		if (err == nil) != tc.ok || gotID != tc.id || gotRoute != tc.route {
			t.Errorf("ParseCookieValue(%.40q) = %q, %q, %v; want %q, %q, ok=%v", tc.in, gotID, gotRoute, err, tc.id, tc.route, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidCookie) {
			t.Errorf("error %v is not ErrInvalidCookie", err)
		}
	}
	if got := FormatCookieValue(id, "n"); got != id+".n" {
		t.Fatal(got)
	}
}

func FuzzParseCookieValue(f *testing.F) {
	f.Add(newID() + ".node1")
	f.Add("")
	f.Add(strings.Repeat("A", IDLength) + ".")
	f.Fuzz(func(t *testing.T, v string) {
		id, route, err := ParseCookieValue(v)
		if err != nil {
			return
		}
		if !ValidID(id) || CheckRoute(route) != nil || FormatCookieValue(id, route) != v {
			t.Fatalf("accepted %q as %q/%q", v, id, route)
		}
	})
}

func TestAttributes(t *testing.T) {
	m, _ := testManager(t, nil)
	s, err := m.Create("app")
	if err != nil {
		t.Fatal(err)
	}
	val := []byte("v1")
	if err := s.Set("a", val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X' // the session keeps its own copy
	got, ok := s.Get("a")
	if !ok || string(got) != "v1" {
		t.Fatalf("Get = %q %v", got, ok)
	}
	got[0] = 'Y' // and hands out copies
	if got, _ := s.Get("a"); string(got) != "v1" {
		t.Fatalf("stored value modified through Get: %q", got)
	}
	_ = s.Set("b", nil)
	if v, ok := s.Get("b"); !ok || len(v) != 0 {
		t.Fatalf("empty value: %v %v", v, ok)
	}
	if keys := s.Keys(); !reflect.DeepEqual(keys, []string{"a", "b"}) || s.Len() != 2 {
		t.Fatalf("keys %v", keys)
	}
	s.Delete("a")
	s.Delete("missing")
	if _, ok := s.Get("a"); ok || s.Len() != 1 {
		t.Fatal("delete failed")
	}
	for _, k := range []string{"", "\xff"} {
		if err := s.Set(k, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Set(%q) = %v", k, err)
		}
	}
}

// Size must be the real msgpack size of the attribute map.
func TestSizeMatchesMsgpack(t *testing.T) {
	m, _ := testManager(t, func(o *Options) { o.MaxSize = 1 << 20 })
	s, _ := m.Create("app")
	attrs := map[string][]byte{}
	for i, n := range []int{0, 1, 31, 32, 255, 256, 70000} {
		k := strings.Repeat("k", n+1) + string(rune('a'+i))
		v := bytes.Repeat([]byte{1}, n)
		attrs[k] = v
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
		b, _ := msgpack.Marshal(attrs)
		if s.Size() != len(b) {
			t.Fatalf("after %d entries Size=%d, msgpack=%d", len(attrs), s.Size(), len(b))
		}
	}
	for k := range attrs {
		s.Delete(k)
	}
	if s.Size() != 1 {
		t.Fatalf("empty size %d", s.Size())
	}
}

func TestTooLarge(t *testing.T) {
	m, _ := testManager(t, func(o *Options) { o.MaxSize = 100 })
	s, _ := m.Create("app")
	if err := s.Set("small", make([]byte, 50)); err != nil {
		t.Fatal(err)
	}
	err := s.Set("big", make([]byte, 60))
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) || tl.Key != "big" || tl.Limit != 100 || tl.Size <= 100 {
		t.Fatalf("err = %v (%+v)", err, tl)
	}
	if !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), "100") {
		t.Fatalf("message does not name key and limit: %v", err)
	}
	if _, ok := s.Get("big"); ok {
		t.Fatal("refused value stored")
	}
	// A batch is all or nothing; replacing within the limit works.
	if err := s.Update(map[string][]byte{"x": {1}, "y": make([]byte, 90)}, nil); !errors.Is(err, ErrTooLarge) || s.Len() != 1 {
		t.Fatalf("batch: %v, len %d", err, s.Len())
	}
	if err := s.Update(map[string][]byte{"y": make([]byte, 80)}, []string{"small"}); err != nil {
		t.Fatal(err)
	}
}

func TestCommitKindsAndVersions(t *testing.T) {
	m, clk := testManager(t, func(o *Options) { o.MaxInactive = 10 * time.Minute })
	rec := record(m)
	s, _ := m.Create("app")
	if s.Version() != 0 || !s.IsNew() || !s.Dirty() {
		t.Fatal("new session state")
	}
	_ = s.Set("a", []byte("1"))
	if k := s.Commit(); k != KindCreated || s.Version() != 1 {
		t.Fatalf("first commit %v v%d", k, s.Version())
	}
	if k := s.Commit(); k != KindNone {
		t.Fatalf("idle commit %v", k)
	}
	_ = s.Set("a", []byte("1")) // same bytes: not a change
	if s.Dirty() || s.Commit() != KindNone {
		t.Fatal("setting an equal value made the session dirty")
	}
	_ = s.Set("b", []byte("2"))
	s.Delete("a")
	if k := s.Commit(); k != KindChanged || s.Version() != 2 {
		t.Fatalf("change commit %v v%d", k, s.Version())
	}
	// Read-only accesses: no message until LastAccess moved > MaxInactive/10.
	clk.Advance(30 * time.Second)
	if k := s.Commit(); k != KindNone {
		t.Fatalf("early touch emitted %v", k)
	}
	clk.Advance(31 * time.Second)
	if k := s.Commit(); k != KindTouched || s.Version() != 2 {
		t.Fatalf("touch: %v v%d", k, s.Version())
	}
	if k := s.Commit(); k != KindNone {
		t.Fatalf("second touch emitted %v", k)
	}
	_ = s.SetMaxInactive(time.Hour)
	if k := s.Commit(); k != KindChanged {
		t.Fatalf("max inactive change: %v", k)
	}
	ds := rec.all()
	if !reflect.DeepEqual(rec.kinds(), []Kind{KindCreated, KindChanged, KindTouched, KindChanged}) {
		t.Fatalf("kinds %v", rec.kinds())
	}
	if c := ds[0]; !c.Full || string(c.Set["a"]) != "1" || c.Version != 1 || c.App != "app" || c.ID != s.ID() {
		t.Fatalf("created delta %+v", c)
	}
	if c := ds[1]; c.Full || string(c.Set["b"]) != "2" || !reflect.DeepEqual(c.Deleted, []string{"a"}) || c.Version != 2 {
		t.Fatalf("changed delta %+v", c)
	}
	if c := ds[2]; !c.LastAccess.Equal(clk.Now()) || c.Set != nil {
		t.Fatalf("touched delta %+v", c)
	}
	if c := ds[3]; c.MaxInactive != time.Hour || c.Version != 3 {
		t.Fatalf("meta delta %+v", c)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindCreated: "created", KindIDChanged: "idchanged", Kind(99): "unknown", KindNone: "none"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q", k, k.String())
		}
	}
}

func TestDeadSessionRefusesChanges(t *testing.T) {
	m, _ := testManager(t, nil)
	s, _ := m.Create("app")
	s.Commit()
	if err := m.Invalidate(s.ID()); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a", nil); !errors.Is(err, ErrInvalidated) {
		t.Fatalf("Set on dead session: %v", err)
	}
	if s.Valid() || s.Commit() != KindNone {
		t.Fatal("dead session still valid or committing")
	}
}
