package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/herdproject/herd/membership"
	"github.com/vmihailenco/msgpack/v5"
)

func sample() Record {
	return Record{Cluster: "demo", Rev: 3, Member: membership.Member{
		Name: "node1", Route: "node1", Role: membership.RoleRouter, HTTPAddr: "127.0.0.1:8081",
		ChannelAddr: "127.0.0.1:4001", Incarnation: 1 << 60,
		Meta: membership.Meta{Version: "1.2.3", Draining: true,
			Apps:  []membership.App{{Name: "counter", Version: "3", Context: "/counter"}, {Name: "hello", Context: "/"}},
			Extra: map[string]string{"zone": "a", "rack": "7"}},
	}}
}

func TestRoundTrip(t *testing.T) {
	for _, r := range []Record{sample(), Compact(sample()), {Cluster: "c", Rev: 0, Leaving: true,
		Member: membership.Member{Name: "x", Route: "x", Incarnation: 1}}} {
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Cluster != r.Cluster || got.Rev != r.Rev || got.Partial != r.Partial || got.Leaving != r.Leaving ||
			!membership.SameRecord(got.Member, r.Member) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a, _ := Encode(sample())
	for i := 0; i < 20; i++ {
		b, _ := Encode(sample())
		if string(a) != string(b) {
			t.Fatal("equal records encoded differently")
		}
	}
}

func TestCompact(t *testing.T) {
	c := Compact(sample())
	if !c.Partial || c.Member.Meta.Apps != nil || c.Member.Meta.Extra != nil || c.Member.Meta.Version != "1.2.3" {
		t.Fatalf("compact: %+v", c)
	}
	if s := sample(); len(s.Member.Meta.Apps) != 2 {
		t.Fatal("Compact changed its input")
	}
}

func TestEncodeRefuses(t *testing.T) {
	big := sample()
	big.Member.Meta.Apps = nil
	for i := 0; i < membership.MaxApps; i++ {
		big.Member.Meta.Apps = append(big.Member.Meta.Apps, membership.App{Name: strings.Repeat("a", 60),
			Version: strings.Repeat("v", 60), Context: "/" + strings.Repeat("c", 100)})
	}
	if _, err := Encode(big); !errors.Is(err, membership.ErrRecordTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	r := sample()
	r.Member.Incarnation = 0
	if _, err := Encode(r); err == nil {
		t.Fatal("zero incarnation accepted")
	}
	r = sample()
	r.Cluster = ""
	if _, err := Encode(r); err == nil {
		t.Fatal("empty cluster accepted")
	}
}

func TestDecodeRejects(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good, _ := Encode(sample())
	tests := map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-3],
		"trailing":       append(append([]byte(nil), good...), 0x01),
		"not a map":      enc([]int{1, 2}),
		"wrong type":     enc(map[string]any{"cl": "demo", "n": 5, "r": "x", "i": 1}),
		"bad name":       enc(map[string]any{"cl": "demo", "n": "a b", "r": "x", "i": 1}),
		"no incarnation": enc(map[string]any{"cl": "demo", "n": "a", "r": "a"}),
		"bad role":       enc(map[string]any{"cl": "demo", "n": "a", "r": "a", "i": 1, "ro": 9}),
		"huge map hdr":   {0xdf, 0x7f, 0xff, 0xff, 0xff},
		"huge str hdr":   {0x81, 0xa2, 'c', 'l', 0xdb, 0x7f, 0xff, 0xff, 0xff},
		"deep nesting":   []byte(strings.Repeat("\x91", 20) + "\x01"),
		"invalid code":   {0xc1},
		"too big":        make([]byte, membership.MaxRecordSize+1),
		"bad utf8":       enc(map[string]any{"cl": "demo", "n": "a", "r": "a", "i": 1, "v": "\xff"}),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSkimAcceptsAllTypes(t *testing.T) {
	v := map[string]any{"a": []any{nil, true, false, 1, -1, 300, -300, 70000, -70000, int64(1) << 40,
		-(int64(1) << 40), uint64(1) << 63, 1.5, float32(2.5), "s", strings.Repeat("x", 300),
		strings.Repeat("y", 70000), []byte{1, 2}, map[string]any{"k": []any{}}}}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := skim(b); err != nil {
		t.Fatalf("skim rejected valid msgpack: %v", err)
	}
}

// FuzzDecode: arbitrary bytes never panic, and whatever decodes is valid
// and re-encodes to a record that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	good, _ := Encode(sample())
	compact, _ := Encode(Compact(sample()))
	f.Add(good)
	f.Add(compact)
	f.Add([]byte{0x80})
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		if err := r.Member.Validate(); err != nil {
			t.Fatalf("decoded an invalid record: %v", err)
		}
		again, err := Encode(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		r2, err := Decode(again)
		if err != nil || !membership.SameRecord(r.Member, r2.Member) || r.Rev != r2.Rev {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
