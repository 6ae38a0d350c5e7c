package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func sampleView() SessionView {
	return SessionView{
		ID:          "abcDEF123_-xyz",
		New:         true,
		Created:     time.UnixMilli(1700000000123),
		LastAccess:  time.UnixMilli(1700000005456),
		MaxInactive: 30 * time.Minute,
		Attrs:       map[string][]byte{"count": []byte("3"), "bin": {0, 1, 2, 255}},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	in := sampleView()
	s, err := EncodeRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(s, "+/= \n") {
		t.Fatalf("not unpadded base64url: %q", s)
	}
	out, err := DecodeRequest(s)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.New != in.New || !out.Created.Equal(in.Created) ||
		!out.LastAccess.Equal(in.LastAccess) || out.MaxInactive != in.MaxInactive {
		t.Fatalf("round trip: got %+v want %+v", out, in)
	}
	if len(out.Attrs) != 2 || !bytes.Equal(out.Attrs["bin"], in.Attrs["bin"]) || string(out.Attrs["count"]) != "3" {
		t.Fatalf("attrs: got %v", out.Attrs)
	}
}

// TestRequestJSONShape pins the documented JSON so other languages can rely on it.
func TestRequestJSONShape(t *testing.T) {
	v := SessionView{ID: "id1", Created: time.UnixMilli(1000), LastAccess: time.UnixMilli(2000),
		MaxInactive: 90 * time.Second, Attrs: map[string][]byte{"k": []byte("hi")}}
	s, err := EncodeRequest(v)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"id1","created":1000,"lastAccess":2000,"maxInactive":90,"attrs":{"k":"aGk="}}`
	if string(raw) != want {
		t.Fatalf("got  %s\nwant %s", raw, want)
	}
}

func TestUpdateRoundTripAndShape(t *testing.T) {
	in := Update{Set: map[string][]byte{"count": []byte("4")}, Delete: []string{"old"}, Renew: true}
	s, err := EncodeUpdate(in)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	if want := `{"set":{"count":"NA=="},"delete":["old"],"renew":true}`; string(raw) != want {
		t.Fatalf("got %s want %s", raw, want)
	}
	out, err := DecodeUpdate(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Set["count"]) != "4" || len(out.Delete) != 1 || out.Delete[0] != "old" || !out.Renew || out.Invalidate {
		t.Fatalf("got %+v", out)
	}
	if out.IsZero() || !(Update{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
}

// A Python app would send padded base64url of JSON written by hand.
func TestDecodeUpdateForeignEncoder(t *testing.T) {
	raw := `{"set": {"user": "YWxpY2U="}, "invalidate": false}`
	s := base64.URLEncoding.EncodeToString([]byte(raw)) // padded
	u, err := DecodeUpdate(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(u.Set["user"]) != "alice" {
		t.Fatalf("got %+v", u)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, header, value, want string
	}{
		{"empty", RequestHeader, "", "empty value"},
		{"not base64", RequestHeader, "!!!", "not base64url"},
		{"not json", RequestHeader, b64("nope"), "not a JSON object"},
		{"array", RequestHeader, b64(`[1]`), "not a JSON object"},
		{"trailing", RequestHeader, b64(`{"id":"a"} {}`), "trailing data"},
		{"no id", RequestHeader, b64(`{"created":1}`), `"id": missing`},
		{"bad id", RequestHeader, b64(`{"id":"a.b"}`), `"id": must be`},
		{"negative time", RequestHeader, b64(`{"id":"a","created":-1}`), `"created": negative`},
		{"negative max", RequestHeader, b64(`{"id":"a","maxInactive":-5}`), `"maxInactive": negative`},
		{"attr not base64", RequestHeader, b64(`{"id":"a","attrs":{"k":"%%"}}`), "not a JSON object"},
		{"empty attr key", RequestHeader, b64(`{"id":"a","attrs":{"":"AA=="}}`), `"attrs": empty key`},
		{"set wrong type", UpdateHeader, b64(`{"set":[1]}`), "not a JSON object"},
		{"empty delete key", UpdateHeader, b64(`{"delete":["a",""]}`), `"delete[1]": empty key`},
		{"set and delete", UpdateHeader, b64(`{"set":{"a":""},"delete":["a"]}`), "also in set"},
		{"renew not bool", UpdateHeader, b64(`{"renew":"yes"}`), "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.header == RequestHeader {
				_, err = DecodeRequest(tc.value)
			} else {
				_, err = DecodeUpdate(tc.value)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.header) {
				t.Fatalf("err = %v, want mention of %q and %q", err, tc.header, tc.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v is not ErrMalformed", err)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	v := sampleView()
	v.Attrs = map[string][]byte{"big": bytes.Repeat([]byte{7}, 40<<10)}
	_, err := EncodeRequest(v)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want *TooLargeError", err)
	}
	if tl.Limit != MaxHeaderSize || tl.Size <= MaxHeaderSize || !strings.Contains(err.Error(), RequestHeader) {
		t.Fatalf("bad error fields: %+v (%v)", tl, err)
	}
	// A larger codec limit accepts it, and the default refuses to decode it.
	s, err := Codec{MaxSize: 1 << 20}.EncodeRequest(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRequest(s); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decode oversize: %v", err)
	}
	if _, err := (Codec{MaxSize: 1 << 20}).DecodeRequest(s); err != nil {
		t.Fatal(err)
	}
	_, err = Codec{MaxSize: 10}.EncodeUpdate(Update{Set: map[string][]byte{"a": []byte("0123456789")}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), UpdateHeader) {
		t.Fatalf("update too large: %v", err)
	}
}

func TestEncodeValidates(t *testing.T) {
	if _, err := EncodeRequest(SessionView{}); err == nil {
		t.Fatal("empty id accepted")
	}
	if _, err := EncodeUpdate(Update{Delete: []string{""}}); err == nil {
		t.Fatal("empty delete key accepted")
	}
}

func TestStripHeaders(t *testing.T) {
	h := http.Header{}
	h.Set(RequestHeader, "forged")
	h.Set(UpdateHeader, "forged")
	h["herd-session-x"] = []string{"raw lower-case key"}
	h.Set("Herd-Sessionless", "also prefixed")
	h.Set("X-Herd-Session", "keep")
	h.Set("Accept", "keep")
	StripHeaders(h)
	if len(h) != 2 || h.Get("Accept") != "keep" || h.Get("X-Herd-Session") != "keep" {
		t.Fatalf("after strip: %v", h)
	}
}
