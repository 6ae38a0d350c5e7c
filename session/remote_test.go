package session

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// pair returns two managers; every delta of a is marshalled, unmarshalled and
// applied to b, like replication over the wire.
func pair(t *testing.T) (a, b *Manager, clk *fakeClock, errs *[]error) {
	t.Helper()
	a, clk = testManager(t, func(o *Options) { o.Route = "a" })
	b, _ = testManager(t, func(o *Options) { o.Route = "b"; o.Clock = clk.Now })
	var mu sync.Mutex
	errs = &[]error{}
	a.Subscribe(func(d Delta) {
		raw, err := MarshalDelta(d)
		if err == nil {
			var got Delta
			if got, err = UnmarshalDelta(raw); err == nil {
				err = b.ApplyRemote(got)
			}
		}
		if err != nil {
			mu.Lock()
			*errs = append(*errs, err)
			mu.Unlock()
		}
	})
	return a, b, clk, errs
}

func sameState(t *testing.T, a, b *Session) {
	t.Helper()
	if a.ID() != b.ID() || a.App() != b.App() || a.Version() != b.Version() || !reflect.DeepEqual(a.Attrs(), b.Attrs()) ||
		a.Size() != b.Size() || !a.Created().Equal(b.Created()) || a.MaxInactive() != b.MaxInactive() {
		t.Fatalf("states differ:\n a=%s v%d %v\n b=%s v%d %v", a.ID(), a.Version(), a.Attrs(), b.ID(), b.Version(), b.Attrs())
	}
}

func TestReplicationThroughDeltas(t *testing.T) {
	a, b, clk, errs := pair(t)
	s, _ := a.Create("shop")
	_ = s.Set("cart", []byte("1 apple"))
	s.Commit()
	r, ok := b.Get(s.ID())
	if !ok {
		t.Fatal("replica not created")
	}
	sameState(t, s, r)
	_ = s.Set("cart", []byte("2 apples"))
	_ = s.Set("user", []byte("ann"))
	s.Commit()
	s.Delete("cart")
	_ = s.SetMaxInactive(time.Hour)
	s.Commit()
	sameState(t, s, r)
	clk.Advance(7 * time.Minute) // > MaxInactive/10 (6m): the touch travels
	s.Commit()
	if !r.LastAccess().Equal(s.LastAccess()) {
		t.Fatalf("touch not applied: %v vs %v", r.LastAccess(), s.LastAccess())
	}
	old := s.ID()
	if _, err := a.ChangeID(old); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Get(old); ok {
		t.Fatal("old id survives on the replica")
	}
	r, _ = b.Get(s.ID())
	sameState(t, s, r)
	if err := a.Invalidate(s.ID()); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatal("invalidation not replicated")
	}
	if len(*errs) != 0 {
		t.Fatalf("apply errors: %v", *errs)
	}
}

func TestApplyRemoteIdempotentNoRollback(t *testing.T) {
	a, _ := testManager(t, nil)
	b, _ := testManager(t, nil)
	rec := record(a)
	brec := record(b)
	s, _ := a.Create("app")
	_ = s.Set("k", []byte("v1"))
	s.Commit()
	_ = s.Set("k", []byte("v2"))
	s.Commit()
	ds := rec.all()
	for _, d := range []Delta{ds[0], ds[1], ds[1], ds[0]} { // duplicate, then stale
		if err := b.ApplyRemote(d); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := b.Get(s.ID())
	if v, _ := r.Get("k"); string(v) != "v2" || r.Version() != 2 {
		t.Fatalf("rolled back: %q v%d", v, r.Version())
	}
	if len(brec.all()) != 0 {
		t.Fatal("ApplyRemote emitted deltas")
	}
	if inf := b.List(); len(inf) != 1 || !inf[0].Replica {
		t.Fatalf("replica flag: %+v", inf)
	}
	// A stale invalidation (version not newer) does not remove the session.
	stale := ds[1]
	stale.Kind = KindInvalidated
	_ = b.ApplyRemote(stale)
	if b.Len() != 1 {
		t.Fatal("stale invalidation applied")
	}
}

func TestApplyRemoteGap(t *testing.T) {
	a, _ := testManager(t, nil)
	b, _ := testManager(t, nil)
	rec := record(a)
	s, _ := a.Create("app")
	s.Commit()
	for i := range 3 {
		_ = s.Set(fmt.Sprint("k", i), []byte("x"))
		s.Commit()
	}
	ds := rec.all() // v1 created, v2..v4 changed
	if err := b.ApplyRemote(ds[2]); !errors.Is(err, ErrGap) {
		t.Fatalf("unknown session partial delta: %v", err)
	}
	if err := b.ApplyRemote(ds[3]); err != nil {
		t.Fatalf("next in line: %v", err)
	}
	// Repair with a snapshot.
	snap, ok := a.Snapshot(s.ID())
	if !ok || !snap.Full {
		t.Fatal("snapshot")
	}
	_ = s.Set("k9", nil)
	s.Commit()
	snap, _ = a.Snapshot(s.ID())
	if err := b.ApplyRemote(snap); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	r, _ := b.Get(s.ID())
	sameState(t, s, r)
	// Gap on a known session.
	_ = s.Set("a", nil)
	s.Commit()
	_ = s.Set("b", nil)
	s.Commit()
	if err := b.ApplyRemote(rec.all()[len(rec.all())-1]); !errors.Is(err, ErrGap) {
		t.Fatalf("gap on known session: %v", err)
	}
}

func TestApplyRemoteExpiredRespectsLocalAccess(t *testing.T) {
	a, clk := testManager(t, nil)
	b, _ := testManager(t, func(o *Options) { o.Clock = clk.Now })
	rec := record(a)
	s, _ := a.Create("app")
	s.Commit()
	_ = b.ApplyRemote(rec.all()[0])
	exp := rec.all()[0]
	exp.Kind = KindExpired
	// b served a request after a last saw the session: keep it.
	clk.Advance(time.Minute)
	if _, ok := b.access(s.ID(), "app"); !ok {
		t.Fatal("access on replica")
	}
	_ = b.ApplyRemote(exp)
	if b.Len() != 1 {
		t.Fatal("expired a session accessed locally since")
	}
	exp.LastAccess = clk.Now()
	_ = b.ApplyRemote(exp)
	if b.Len() != 0 {
		t.Fatal("expiry not applied")
	}
}

func TestReplicaExpiresWithGrace(t *testing.T) {
	a, clk := testManager(t, func(o *Options) { o.MaxInactive = 10 * time.Minute })
	b, _ := testManager(t, func(o *Options) { o.Clock = clk.Now })
	rec := record(a)
	s, _ := a.Create("app")
	s.Commit()
	_ = b.ApplyRemote(rec.all()[0])
	clk.Advance(10*time.Minute + 30*time.Second)
	if a.Sweep() != 1 || b.Sweep() != 0 {
		t.Fatal("owner must expire first, the replica keeps a tenth more")
	}
	clk.Advance(time.Minute)
	if b.Sweep() != 1 {
		t.Fatal("replica never expires")
	}
}

func TestAllForStateTransfer(t *testing.T) {
	a, _ := testManager(t, nil)
	b, _ := testManager(t, nil)
	var ids []string
	for i := range 5 {
		s, _ := a.Create("app")
		_ = s.Set("i", []byte{byte(i)})
		s.Commit()
		ids = append(ids, s.ID())
	}
	_, _ = a.Create("app") // uncommitted: not transferred
	all := a.All()
	if len(all) != 5 {
		t.Fatalf("All: %d", len(all))
	}
	for _, d := range all {
		if err := b.ApplyRemote(d); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		s, _ := a.Get(id)
		r, ok := b.Get(id)
		if !ok {
			t.Fatal("missing after transfer")
		}
		sameState(t, s, r)
	}
	if _, ok := a.Snapshot(newID()); ok {
		t.Fatal("snapshot of unknown id")
	}
}

func TestDeltaCodec(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	d := Delta{ID: newID(), OldID: newID(), App: "shop##2", Kind: KindIDChanged, Version: 7, Full: true,
		Set: map[string][]byte{"a": {1, 2}, "e": {}}, Deleted: []string{"x"}, Created: now, LastAccess: now.Add(time.Second),
		MaxInactive: time.Minute}
	b, err := MarshalDelta(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalDelta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != d.ID || got.OldID != d.OldID || got.App != d.App || got.Kind != d.Kind || got.Version != d.Version ||
		!got.Full || !reflect.DeepEqual(got.Set, d.Set) || !reflect.DeepEqual(got.Deleted, d.Deleted) ||
		!got.Created.Equal(d.Created) || !got.LastAccess.Equal(d.LastAccess) || got.MaxInactive != d.MaxInactive {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, d)
	}
	// Embedded in another struct, as replication may do.
	type frame struct {
		Seq   uint64  `msgpack:"seq"`
		Delta []Delta `msgpack:"d"`
	}
	raw, _ := msgpack.Marshal(frame{Seq: 1, Delta: []Delta{d}})
	var f frame
	if err := msgpack.Unmarshal(raw, &f); err != nil || len(f.Delta) != 1 || f.Delta[0].ID != d.ID {
		t.Fatalf("embedded: %v %+v", err, f)
	}
}

func TestDeltaRejects(t *testing.T) {
	good := Delta{ID: newID(), App: "a", Kind: KindChanged, Version: 1, MaxInactive: time.Minute}
	tests := []struct {
		name  string
		mod   func(*Delta)
		field string
	}{
		{"id", func(d *Delta) { d.ID = "nope" }, "ID"},
		{"app", func(d *Delta) { d.App = "" }, "App"},
		{"kind", func(d *Delta) { d.Kind = 42 }, "Kind"},
		{"version", func(d *Delta) { d.Version = 0 }, "Version"},
		{"max inactive", func(d *Delta) { d.MaxInactive = 0 }, "MaxInactive"},
		{"old id", func(d *Delta) { d.Kind = KindIDChanged; d.Full = true }, "OldID"},
		{"set key", func(d *Delta) { d.Set = map[string][]byte{"": nil} }, "Set"},
		{"deleted key", func(d *Delta) { d.Deleted = []string{""} }, "Deleted[0]"},
	}
	for _, tc := range tests {
		d := good
		tc.mod(&d)
		b, _ := MarshalDelta(d)
		_, err := UnmarshalDelta(b)
		var de *DeltaError
		if !errors.As(err, &de) || de.Field != tc.field || !errors.Is(err, ErrInvalidDelta) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		m, _ := testManager(t, nil)
		if err := m.ApplyRemote(d); !errors.Is(err, ErrInvalidDelta) {
			t.Errorf("%s: ApplyRemote accepted: %v", tc.name, err)
		}
	}
	b, _ := MarshalDelta(good)
	for _, in := range [][]byte{nil, {0xc0}, {0x81, 0xa2, 'i', 'd'}, append(b, 0), {0xdf, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := UnmarshalDelta(in); err == nil {
			t.Errorf("UnmarshalDelta(%x) accepted", in)
		}
	}
	// A lying map length must fail fast, not preallocate.
	lying := append([]byte{0x81, 0xa3, 's', 'e', 't', 0xdf, 0x7f, 0xff, 0xff, 0xff}, bytes.Repeat([]byte{0xa1, 'k', 0xc4, 0}, 3)...)
	if _, err := UnmarshalDelta(lying); err == nil || !strings.Contains(err.Error(), "set") {
		t.Fatalf("lying set: %v", err)
	}
}

func FuzzUnmarshalDelta(f *testing.F) {
	d := Delta{ID: newID(), OldID: newID(), App: "a", Kind: KindIDChanged, Version: 3, Full: true,
		Set: map[string][]byte{"k": {1}}, Deleted: []string{"z"}, Created: time.Unix(5, 0), MaxInactive: time.Second}
	b, _ := MarshalDelta(d)
	f.Add(b)
	d.Kind, d.Set, d.Full = KindChanged, nil, false
	b, _ = MarshalDelta(d)
	f.Add(b)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := UnmarshalDelta(in)
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted invalid delta: %v", err)
		}
		again, err := MarshalDelta(d)
		if err != nil {
			t.Fatalf("accepted delta does not encode: %v", err)
		}
		if d2, err := UnmarshalDelta(again); err != nil || !sameDelta(d, d2) {
			t.Fatalf("accepted delta changes on a round trip: %v\n%+v\n%+v", err, d, d2)
		}
		m, _ := testManager(t, nil)
		err = m.ApplyRemote(d)
		if err != nil && !errors.Is(err, ErrGap) {
			t.Fatalf("valid delta refused: %v", err)
		}
	})
}

func TestLateDeltasDoNotResurrect(t *testing.T) {
	a, clk := testManager(t, nil)
	b, _ := testManager(t, func(o *Options) { o.Clock = clk.Now })
	rec := record(a)
	s, _ := a.Create("app")
	_ = s.Set("k", []byte("v"))
	s.Commit()
	_ = s.Set("k", []byte("w"))
	s.Commit()
	oldID := s.ID()
	if _, err := a.ChangeID(oldID); err != nil {
		t.Fatal(err)
	}
	if err := a.Invalidate(s.ID()); err != nil {
		t.Fatal(err)
	}
	for _, d := range rec.all() {
		if err := b.ApplyRemote(d); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 0 {
		t.Fatal("replica survived")
	}
	// Every earlier delta arrives again, late: nothing comes back, on either side.
	for _, m := range []*Manager{a, b} {
		for _, d := range rec.all() {
			if err := m.ApplyRemote(d); err != nil {
				t.Fatalf("late %s: %v", d.Kind, err)
			}
		}
		if m.Len() != 0 {
			t.Fatalf("late deltas resurrected %d sessions", m.Len())
		}
	}
	// Tombstones go after TombstoneTTL.
	clk.Advance(TombstoneTTL + time.Second)
	b.Sweep()
	b.mu.RLock()
	n := len(b.tombs)
	b.mu.RUnlock()
	if n != 0 {
		t.Fatalf("%d tombstones left", n)
	}
}
