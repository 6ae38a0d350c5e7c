package channel

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

type testDelta struct {
	ID      string            `msgpack:"id"`
	Version uint64            `msgpack:"v"`
	Set     map[string][]byte `msgpack:"set"`
	Deleted []string          `msgpack:"del"`
	At      time.Time         `msgpack:"at"`
}

func TestCodecRoundTrip(t *testing.T) {
	in := testDelta{
		ID: "abc.node1", Version: 7, Set: map[string][]byte{"count": {3}},
		Deleted: []string{"old"}, At: time.Unix(1700000000, 123).UTC(),
	}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	var out testDelta
	if err := Decode(b, &out); err != nil {
		t.Fatal(err)
	}
	out.At = out.At.UTC()
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestCodecRefuses(t *testing.T) {
	good, err := Encode(testDelta{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("\x91", 40) + "\xc0"
	for _, tc := range []struct {
		name string
		data []byte
		into any
		want string
	}{
		{"not a pointer", good, testDelta{}, "pointer to a struct"},
		{"pointer to a map", good, &map[string]any{}, "pointer to a struct"},
		{"nil pointer", good, (*testDelta)(nil), "pointer to a struct"},
		{"interface target", good, new(any), "pointer to a struct"},
		{"ext type 5", []byte{0x81, 0xa2, 'i', 'd', 0xd4, 0x05, 0x00}, &testDelta{}, "0xd4"},
		{"ext8 not timestamp", []byte{0x81, 0xa2, 'a', 't', 0xc7, 0x01, 0x05, 0x00}, &testDelta{}, "0xc7"},
		{"reserved code", []byte{0xc1}, &testDelta{}, "0xc1"},
		{"trailing bytes", append(append([]byte{}, good...), 0xc0), &testDelta{}, "trailing"},
		{"truncated", good[:len(good)-1], &testDelta{}, ""},
		{"array longer than body", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, &testDelta{}, "exceeds"},
		{"string longer than body", []byte{0xdb, 0x00, 0x10, 0x00, 0x00, 'a'}, &testDelta{}, "exceeds"},
		{"too deep", []byte(deep), &testDelta{}, "deeper"},
		{"empty", nil, &testDelta{}, "truncated"},
		{"wrong type for field", []byte{0x81, 0xa1, 'v', 0xa1, 'x'}, &testDelta{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode(tc.data, tc.into)
			if !errors.Is(err, ErrCodec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrCodec mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Encode(map[string]int{"a": 1}); !errors.Is(err, ErrCodec) {
		t.Fatalf("Encode(map): %v", err)
	}
	type withExt struct {
		D time.Duration
		X msgpack.RawMessage
	}
	if _, err := Encode(withExt{X: msgpack.RawMessage{0xd4, 0x05, 0x00}}); !errors.Is(err, ErrCodec) {
		t.Fatalf("Encode with an ext value: %v", err)
	}
}
