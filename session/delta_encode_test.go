package session

import (
	"bytes"
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
		// What the encoder writes, the canonical reader reads, all of it, without the library.
		c, n, ok := decodeCanonical(fast)
		if !ok || n != len(fast) || !sameDelta(c, d) {
			t.Fatalf("delta %d: canonical reader ok=%v, %d of %d bytes, %+v", i, ok, n, len(fast), c)
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

// BenchmarkDecodeDelta reads the benchmark request's change (a counter and 1 KiB) the way a peer does
// (canonical) and through msgpack/v5's decoder (library), which reads any other encoding.
func BenchmarkDecodeDelta(b *testing.B) {
	d := Delta{ID: newID(), App: "counter", Kind: KindChanged, Version: 42, Created: time.Now(), LastAccess: time.Now(),
		MaxInactive: 30 * time.Minute, Set: map[string][]byte{"n": []byte("42"), "pad": make([]byte, 1024)}}
	enc, err := MarshalDelta(d)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("canonical", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := DecodeDelta(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got Delta
			if err := got.DecodeMsgpack(msgpack.NewDecoder(bytes.NewReader(enc))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The canonical reader accepts only what msgpack/v5's decoder reads the same way: whatever it
// accepts, the library path accepts too, taking the same bytes and giving the same delta.
func FuzzDecodeCanonical(f *testing.F) {
	for _, d := range []Delta{
		{ID: newID(), OldID: newID(), App: "a", Kind: KindIDChanged, Version: 3, Full: true,
			Set: map[string][]byte{"k": {1}, "": nil, "big": make([]byte, 300)}, Deleted: []string{"z", ""},
			Created: time.Unix(5, 7), LastAccess: time.Unix(1<<40, 999999999), MaxInactive: -time.Second},
		{ID: newID(), App: strings.Repeat("x", 40), Kind: KindChanged, Version: 1 << 40, MaxInactive: time.Duration(1 << 62)},
		{},
	} {
		enc, err := MarshalDelta(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(append(enc, 0x81, 0xa1, 'v', 0x05)) // a second delta behind it
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, n, ok := decodeCanonical(in)
		if !ok {
			return
		}
		r := bytes.NewReader(in)
		var lib Delta
		if err := lib.DecodeMsgpack(msgpack.NewDecoder(r)); err != nil {
			t.Fatalf("canonical reader accepted what the library refuses (%v): %x", err, in)
		}
		if used := len(in) - r.Len(); used != n || !sameDelta(c, lib) || !c.Created.Equal(lib.Created) ||
			!c.LastAccess.Equal(lib.LastAccess) || c.Created.Location() != lib.Created.Location() {
			t.Fatalf("canonical reader: %d bytes, %+v\nlibrary: %d bytes, %+v", n, c, used, lib)
		}
	})
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
