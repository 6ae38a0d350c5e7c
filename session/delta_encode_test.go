package session

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The hand-written encoder must say exactly what msgpack.Marshal of the struct says.
func TestMarshalDeltaMatchesReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		d := Delta{ID: newID(), App: strings.Repeat("a", 1+r.IntN(300)), Kind: Kind(1 + r.IntN(int(kindEnd)-1)),
			Version: r.Uint64() >> r.IntN(64), MaxInactive: time.Duration(r.Int64N(1 << 40))}
		if r.IntN(2) == 0 {
			d.OldID = newID()
		}
		d.Full = r.IntN(2) == 0
		for j := range r.IntN(40) {
			if d.Set == nil {
				d.Set = map[string][]byte{}
			}
			d.Set[fmt.Sprintf("k%d-%s", j, strings.Repeat("x", r.IntN(70)))] = make([]byte, r.IntN(70000)>>r.IntN(16))
		}
		for j := range r.IntN(20) {
			d.Deleted = append(d.Deleted, fmt.Sprintf("gone%d", j))
		}
		if r.IntN(5) > 0 {
			d.Created = time.Unix(r.Int64N(1<<34), r.Int64N(1e9))
			d.LastAccess = time.Unix(r.Int64N(1<<34), r.Int64N(1e9))
		}
		fast, err := MarshalDelta(d)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := msgpack.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		var a, b Delta
		if err := msgpack.Unmarshal(fast, &a); err != nil {
			t.Fatalf("delta %d: fast encoding does not decode: %v", i, err)
		}
		if err := msgpack.Unmarshal(slow, &b); err != nil {
			t.Fatal(err)
		}
		if !sameDelta(a, b) || !sameDelta(a, d) {
			t.Fatalf("delta %d differs:\nfast %+v\nslow %+v", i, a, b)
		}
	}
}

func sameDelta(a, b Delta) bool {
	if a.ID != b.ID || a.OldID != b.OldID || a.App != b.App || a.Kind != b.Kind || a.Version != b.Version ||
		a.Full != b.Full || !a.Created.Equal(b.Created) || !a.LastAccess.Equal(b.LastAccess) ||
		a.MaxInactive != b.MaxInactive || len(a.Set) != len(b.Set) || len(a.Deleted) != len(b.Deleted) {
		return false
	}
	for k, v := range a.Set {
		if w, ok := b.Set[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	for i := range a.Deleted {
		if a.Deleted[i] != b.Deleted[i] {
			return false
		}
	}
	return true
}

func BenchmarkMarshalDelta(b *testing.B) {
	d := Delta{ID: newID(), App: "counter", Kind: KindChanged, Version: 42, Created: time.Now(), LastAccess: time.Now(),
		MaxInactive: 30 * time.Minute, Set: map[string][]byte{"n": []byte("42"), "pad": make([]byte, 1024)}}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			_, _ = MarshalDelta(d)
		}
	})
	b.Run("reflection", func(b *testing.B) {
		for b.Loop() {
			_, _ = msgpack.Marshal(&d)
		}
	})
}

func BenchmarkUnmarshalDelta(b *testing.B) {
	d := Delta{ID: newID(), App: "counter", Kind: KindChanged, Version: 42, Created: time.Now(), LastAccess: time.Now(),
		MaxInactive: 30 * time.Minute, Set: map[string][]byte{"n": []byte("42"), "pad": make([]byte, 1024)}}
	enc, err := MarshalDelta(d)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalDelta(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// Fields a newer member may add are skipped, whatever the length of their names, and long values
// (which the decoder grows as they arrive) come through whole.
func TestDecodeSkipsUnknownFields(t *testing.T) {
	id := newID()
	big := make([]byte, 200<<10+7)
	for i := range big {
		big[i] = byte(i)
	}
	for _, name := range []string{"x", "future", "sixteen-chars-xx", "a-field-name-longer-than-sixteen-bytes", strings.Repeat("n", 70000)} {
		in, err := msgpack.Marshal(map[string]any{"id": id, "app": "shop", "kind": uint8(KindChanged), "v": uint64(7), "maxInactive": int64(time.Minute),
			name: map[string]any{"nested": []int{1, 2, 3}}, "set": map[string][]byte{"big": big, "empty": nil}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := UnmarshalDelta(in)
		if err != nil {
			t.Fatalf("unknown field %.20q: %v", name, err)
		}
		if d.ID != id || d.App != "shop" || d.Version != 7 || string(d.Set["big"]) != string(big) || d.Set["empty"] == nil || len(d.Set) != 2 {
			t.Fatalf("unknown field %.20q: decoded %q %q v%d, %d attributes", name, d.ID, d.App, d.Version, len(d.Set))
		}
	}
}
