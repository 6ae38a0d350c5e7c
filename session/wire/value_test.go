package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

type cart struct {
	Items []string
	Total float64
	When  time.Time
	Count int
}

type role string

func testRegistry(t testing.TB) *Registry {
	t.Helper()
	r := NewRegistry()
	if err := r.Register("cart", cart{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("role", role("")); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestValueRoundTripKeepsTypes(t *testing.T) {
	r := testRegistry(t)
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	c := cart{Items: []string{"a", "b"}, Total: 9.5, When: now.UTC(), Count: 2}
	values := []any{
		nil, true, false, 0, 1, -1, 1 << 40, int8(-5), int16(300), int32(-70000), int64(1 << 62),
		uint(7), uint8(255), uint16(65535), uint32(1 << 31), uint64(1 << 63), float32(1.5), 3.25,
		"", "héllo", []byte{}, []byte{0, 1, 255}, now, 90 * time.Second,
		[]string{"x", ""}, []int{1, -2}, []int64{5}, []float64{0.5}, []any{1, "two", []byte{3}},
		map[string]string{"a": "b"}, map[string]any{"n": 1, "s": "x", "nested": map[string]any{"f": 2.5}},
		map[any]any{1: "one", "two": 2}, []string(nil), map[string]any(nil),
		c, &c, role("admin"), (*cart)(nil),
	}
	for _, v := range values {
		b, err := r.EncodeValue(v)
		if err != nil {
			t.Fatalf("encode %T %v: %v", v, v, err)
		}
		got, err := r.DecodeValue(b)
		if err != nil {
			t.Fatalf("decode %T %v: %v", v, v, err)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(v) {
			t.Fatalf("type changed: %T -> %T", v, got)
		}
		if tv, ok := v.(time.Time); ok {
			if !tv.Equal(got.(time.Time)) {
				t.Fatalf("time changed: %v -> %v", tv, got)
			}
			continue
		}
		if tc, ok := v.(cart); ok {
			g := got.(cart)
			if !g.When.Equal(tc.When) || !reflect.DeepEqual(g.Items, tc.Items) || g.Total != tc.Total || g.Count != tc.Count {
				t.Fatalf("cart changed: %+v -> %+v", tc, g)
			}
			continue
		}
		if p, ok := v.(*cart); ok && p != nil {
			if g := got.(*cart); g == p || g.Count != p.Count || !reflect.DeepEqual(g.Items, p.Items) {
				t.Fatalf("*cart changed: %+v -> %+v", p, g)
			}
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("value changed: %#v -> %#v", v, got)
		}
	}
}

// A plain msgpack round trip loses the types; this is what the codec fixes.
func TestPlainMsgpackLosesTypes(t *testing.T) {
	b, _ := msgpack.Marshal(map[string]any{"n": 3})
	var m map[string]any
	_ = msgpack.Unmarshal(b, &m)
	if _, isInt := m["n"].(int); isInt {
		t.Skip("msgpack now keeps int; the codec is still correct")
	}
}

func TestUnregisteredTypes(t *testing.T) {
	type secret struct{ A int }
	if _, err := EncodeValue(secret{1}); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("encode unregistered: %v", err)
	}
	if _, err := EncodeValue(make(chan int)); err == nil {
		t.Fatal("chan encoded")
	}
	// A value encoded with a registry does not decode without it.
	b, err := testRegistry(t).EncodeValue(cart{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecodeValue(b)
	if err == nil || !strings.Contains(err.Error(), `"cart" is not registered`) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("decode unregistered: %v", err)
	}
}

func TestRegisterRules(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name   string
		sample any
		ok     bool
	}{
		{"cart", cart{}, true},
		{"cart", cart{}, true},    // same again: no-op
		{"cart", role(""), false}, // name reused
		{"other", cart{}, false},  // type reused
		{"ptr", &cart{}, false},
		{"", role(""), false},
		{"nil", nil, false},
		{"int", 0, false},
	}
	for _, tc := range tests {
		err := r.Register(tc.name, tc.sample)
		if (err == nil) != tc.ok {
			t.Errorf("Register(%q, %T) = %v, want ok=%v", tc.name, tc.sample, err, tc.ok)
		}
	}
	var nilReg *Registry
	if err := nilReg.Register("x", cart{}); err == nil {
		t.Error("nil registry accepted a registration")
	}
}

func TestDepthLimit(t *testing.T) {
	var v any = "leaf"
	for range MaxDepth + 2 {
		v = []any{v}
	}
	if _, err := EncodeValue(v); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deep encode: %v", err)
	}
	// Hand-built deep input: 40 nested ["[]any", [ ... ]].
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for range 40 {
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeString(tagAnys)
		_ = enc.EncodeArrayLen(1)
	}
	_ = enc.EncodeArrayLen(2)
	_ = enc.EncodeString(tagNil)
	_ = enc.EncodeNil()
	if _, err := DecodeValue(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deep decode: %v", err)
	}
}

func TestDecodeValueRejects(t *testing.T) {
	enc := func(items ...any) []byte {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		for _, it := range items {
			if err := e.Encode(it); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	lyingMap := append(enc([]any{tagMapAny}), 0xdf, 0x00, 0x0f, 0x42, 0x40) // map32 of 1e6 entries
	lyingMap[0] = 0x92                                                      // fixarray(2)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "envelope"},
		{"not array", enc("x"), "envelope"},
		{"three elements", enc([]any{"int", 1, 2}), "want [tag, payload]"},
		{"unknown tag", enc([]any{"complex128", 1}), "unknown type tag"},
		{"int8 overflow", enc([]any{"int8", 300}), "out of range"},
		{"uint8 negative", enc([]any{"uint8", -1}), "int8"},
		{"bool wrong", enc([]any{"bool", "yes"}), "bool"},
		{"time garbage", enc([]any{"time.Time", []byte{9, 9}}), "time.Time"},
		{"trailing", enc([]any{"nil", nil}, 1), "trailing"},
		{"lying map length", lyingMap, "exceed"},
		{"non-string key", enc([]any{"map[string]any", map[int]int{1: 1}}), "map[string]any key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeValue(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestUnhashableDecodedKey(t *testing.T) {
	// map[any]any whose key is a []any envelope: must be an error, not a panic.
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	_ = e.EncodeArrayLen(2)
	_ = e.EncodeString(tagMapAnyAny)
	_ = e.EncodeMapLen(1)
	_ = e.EncodeArrayLen(2)
	_ = e.EncodeString(tagAnys)
	_ = e.EncodeArrayLen(0)
	_ = e.EncodeArrayLen(2)
	_ = e.EncodeString(tagNil)
	_ = e.EncodeNil()
	if _, err := DecodeValue(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "cannot be a map key") {
		t.Fatalf("err = %v", err)
	}
}

func TestKeys(t *testing.T) {
	r := testRegistry(t)
	for _, k := range []any{"count", "", "~tilde", "a|b", 7, int64(-1), uint8(3), true, 2.5, role("r"), "\xff"} {
		s, err := r.EncodeKey(k)
		if err != nil {
			t.Fatalf("EncodeKey(%#v): %v", k, err)
		}
		got, err := r.DecodeKey(s)
		if err != nil || got != k {
			t.Fatalf("key %#v -> %q -> %#v, %v", k, s, got, err)
		}
	}
	if s, _ := EncodeKey("count"); s != "count" {
		t.Fatalf("plain string key changed: %q", s)
	}
	if _, err := EncodeKey([]string{"x"}); err == nil {
		t.Fatal("slice key accepted")
	}
	for _, bad := range []string{"", "~!!", "~" + "AAAA"} {
		if _, err := DecodeKey(bad); err == nil {
			t.Fatalf("DecodeKey(%q) accepted", bad)
		}
	}
}

func TestValuesNamespaces(t *testing.T) {
	r := testRegistry(t)
	a, err := r.EncodeValues("auth", map[any]any{"user": "ann", 1: cart{Count: 3}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.EncodeValues("flash", map[any]any{"user": "other"})
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]byte{"foreign": []byte("raw")}
	for k, v := range a {
		attrs[k] = v
	}
	for k, v := range f {
		attrs[k] = v
	}
	if _, ok := attrs["auth|user"]; !ok {
		t.Fatalf("attribute keys: %v", attrs)
	}
	got, err := r.DecodeValues("auth", attrs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["user"] != "ann" || got[1].(cart).Count != 3 {
		t.Fatalf("auth values: %#v", got)
	}
	attrs["auth|broken"] = []byte{1, 2, 3}
	got, err = r.DecodeValues("auth", attrs)
	if err == nil || !strings.Contains(err.Error(), `"auth|broken"`) || len(got) != 2 {
		t.Fatalf("broken attribute: %v %#v", err, got)
	}
	if _, err := r.EncodeValues("a|b", nil); err == nil {
		t.Fatal("name with separator accepted")
	}
}
