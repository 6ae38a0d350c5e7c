package farming

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func entry(key, origin, sum string, stamp uint64, deleted bool) Entry {
	name, version, _ := strings.Cut(key, "##")
	file := key + ".zip"
	return Entry{Key: key, File: file, Name: name, Version: version, Context: "/" + name, SHA256: strings.Repeat(sum, 64),
		Size: 100, Origin: origin, Stamp: stamp, Deleted: deleted}
}

// TestMergeOrderIndependent: merging the same entries in any order gives the same ledger.
func TestMergeOrderIndependent(t *testing.T) {
	all := []Entry{
		entry("shop", "node1", "a", 10, false),
		entry("shop", "node2", "b", 10, false), // same stamp: node2 > node1 wins
		entry("shop", "node1", "c", 9, false),
		entry("blog", "node3", "d", 5, false),
		entry("blog", "node1", "d", 7, true), // tombstone wins by stamp
		entry("api##2", "node2", "e", 3, false),
	}
	var want string
	for i := range 50 {
		l := newLedger()
		es := append([]Entry(nil), all...)
		rand.Shuffle(len(es), func(a, b int) { es[a], es[b] = es[b], es[a] })
		for _, e := range es {
			l.merge([]Entry{e})
		}
		d := l.digest()
		if i == 0 {
			want = d
			if got := l.entries["shop"]; got.Origin != "node2" {
				t.Fatalf("shop winner = %+v, want node2's", got)
			}
			if !l.entries["blog"].Deleted {
				t.Fatal("blog tombstone lost")
			}
		} else if d != want {
			t.Fatalf("order %d: digest %s, want %s", i, d, want)
		}
	}
}

func TestStampMonotonic(t *testing.T) {
	l := newLedger()
	l.merge([]Entry{entry("x", "node1", "a", 5000, false)})
	if s := l.stamp(100); s != 5001 {
		t.Fatalf("stamp after seeing 5000 with a slow clock = %d, want 5001", s)
	}
	if s := l.stamp(9000); s != 9000 {
		t.Fatalf("stamp with a later clock = %d, want 9000", s)
	}
}

func TestEntryValidate(t *testing.T) {
	good := entry("shop##2", "node1", "a", 1, false)
	if err := good.Validate(1 << 30); err != nil {
		t.Fatalf("valid entry refused: %v", err)
	}
	cases := map[string]func(*Entry){
		"file":    func(e *Entry) { e.File = "../shop.zip" },
		"name":    func(e *Entry) { e.Name = "other" },
		"key":     func(e *Entry) { e.Key = "shop##3" },
		"version": func(e *Entry) { e.Version = "3" },
		"origin":  func(e *Entry) { e.Origin = "bad name" },
		"stamp":   func(e *Entry) { e.Stamp = 0 },
		"sha":     func(e *Entry) { e.SHA256 = "xyz" },
		"size":    func(e *Entry) { e.Size = -1 },
		"context": func(e *Entry) { e.Context = "shop" },
		"sig":     func(e *Entry) { e.Sig = []byte{1, 2} },
	}
	for name, mut := range cases {
		e := good
		mut(&e)
		if err := e.Validate(1 << 30); err == nil {
			t.Errorf("%s: bad entry accepted: %+v", name, e)
		}
	}
	un := entry("shop", "node1", "a", 1, false)
	un.File, un.Key, un.Version = "shop.zip", "shop##7", "7" // unversioned file, manifest version 7
	if err := un.Validate(1 << 30); err != nil {
		t.Fatalf("manifest-versioned entry refused: %v", err)
	}
}

func TestDecodeEntries(t *testing.T) {
	es := []Entry{entry("a", "node1", "a", 1, false), entry("b", "node2", "b", 2, true)}
	b, err := encodeEntries(es)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEntries(b, 10, 1<<30)
	if err != nil || len(got) != 2 || got[1].Key != "b" || !got[1].Deleted {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := decodeEntries(b, 1, 1<<30); err == nil {
		t.Fatal("too many entries accepted")
	}
	if _, err := decodeEntries(b[:len(b)-3], 10, 1<<30); err == nil {
		t.Fatal("truncated body accepted")
	}
}

// TestPlanConflicts: two names on one context: the name with the greatest newest entry owns it
// everywhere; UndeployOldVersions retires older versions.
func TestPlanConflicts(t *testing.T) {
	a := entry("shop", "node1", "a", 10, false)
	b := entry("store", "node2", "b", 11, false)
	b.Context = "/shop"
	p := computePlan([]Entry{a, b}, false)
	if _, ok := p.want["store"]; !ok || p.conflicts["shop"] != "store" {
		t.Fatalf("plan = %+v", p)
	}
	v1 := entry("api##1", "node1", "c", 1, false)
	v2 := entry("api##2", "node1", "d", 2, false)
	p = computePlan([]Entry{v1, v2}, true)
	if _, ok := p.want["api##2"]; !ok || !p.retiring["api##1"] {
		t.Fatalf("plan with UndeployOldVersions = %+v", p)
	}
	p = computePlan([]Entry{v1, v2}, false)
	if len(p.want) != 2 {
		t.Fatalf("plan without UndeployOldVersions = %+v", p)
	}
}

func TestDecodeState(t *testing.T) {
	st, bad, err := decodeState([]byte(`{"version":1,"entries":[{"key":"x","file":"x.zip","name":"x","context":"/x","sha256":"`+
		strings.Repeat("a", 64)+`","origin":"node1","stamp":3},{"key":"../y"}],"watch":{"x.zip":{"key":"x","sha256":"`+strings.Repeat("a", 64)+`"},"../z":{"key":"z","sha256":"`+strings.Repeat("a", 64)+`"}}}`), 1<<30, 100)
	if err != nil || len(st.Entries) != 1 || len(bad) != 1 || len(st.Watch) != 1 {
		t.Fatalf("state = %+v, bad %v, err %v", st, bad, err)
	}
	if _, _, err := decodeState([]byte(`{"version":2}`), 1<<30, 100); err == nil {
		t.Fatal("unknown version accepted")
	}
}
