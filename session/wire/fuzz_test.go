package wire

import (
	"encoding/base64"
	"testing"
	"time"
)

func FuzzDecodeRequest(f *testing.F) {
	good, _ := EncodeRequest(sampleView())
	f.Add(good)
	f.Add("")
	f.Add(b64(`{"id":"a","attrs":{"k":"AA=="}}`))
	f.Add(b64(`{"id":"a","created":-1}`))
	f.Add(base64.URLEncoding.EncodeToString([]byte(`{"id":"x","new":true}`)))
	f.Fuzz(func(t *testing.T, s string) {
		v, err := DecodeRequest(s)
		if err != nil {
			return
		}
		// What decodes must encode again and decode to the same thing.
		s2, err := Codec{MaxSize: 1 << 20}.EncodeRequest(v)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		v2, err := Codec{MaxSize: 1 << 20}.DecodeRequest(s2)
		if err != nil || v2.ID != v.ID || len(v2.Attrs) != len(v.Attrs) || v2.MaxInactive != v.MaxInactive ||
			!v2.Created.Equal(v.Created.Truncate(time.Millisecond)) {
			t.Fatalf("unstable: %+v vs %+v (%v)", v, v2, err)
		}
	})
}

func FuzzDecodeUpdate(f *testing.F) {
	good, _ := EncodeUpdate(Update{Set: map[string][]byte{"a": []byte("1")}, Delete: []string{"b"}, Renew: true})
	f.Add(good)
	f.Add(b64(`{"invalidate":true}`))
	f.Add(b64(`{"set":{"a":""},"delete":["a"]}`))
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := DecodeUpdate(s)
		if err != nil {
			return
		}
		s2, err := Codec{MaxSize: 1 << 20}.EncodeUpdate(u)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", u, err)
		}
		u2, err := Codec{MaxSize: 1 << 20}.DecodeUpdate(s2)
		if err != nil || len(u2.Set) != len(u.Set) || len(u2.Delete) != len(u.Delete) ||
			u2.Invalidate != u.Invalidate || u2.Renew != u.Renew {
			t.Fatalf("unstable: %+v vs %+v (%v)", u, u2, err)
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	r := testRegistry(f)
	for _, v := range []any{nil, 1, "s", []byte{1}, time.Unix(5, 0), []any{1, "x"},
		map[string]any{"a": []string{"b"}}, map[any]any{1: 2}, cart{Items: []string{"i"}}, &cart{}, role("x")} {
		b, err := r.EncodeValue(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := r.DecodeValue(b)
		if err != nil {
			return
		}
		// Every decoded value is encodable again (no foreign types leak in).
		if _, err := r.EncodeValue(v); err != nil {
			t.Fatalf("decoded %#v does not re-encode: %v", v, err)
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	for _, k := range []any{"plain", 7, "~x", true} {
		s, _ := EncodeKey(k)
		f.Add(s)
	}
	f.Add("~!")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := DecodeKey(s)
		if err != nil {
			return
		}
		m := map[any]any{}
		m[k] = true // must not panic: keys are always hashable
	})
}
