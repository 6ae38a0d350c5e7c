package replication

import (
	"bytes"
	"testing"
	"time"

	"github.com/herdproject/herd/session"
)

func sampleDelta(t testing.TB) []byte {
	d := session.Delta{ID: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", App: "shop", Kind: session.KindChanged, Version: 3,
		Set: map[string][]byte{"cart": []byte("3 items")}, Deleted: []string{"old"}, Created: time.Unix(1700000000, 0),
		LastAccess: time.Unix(1700000100, 0), MaxInactive: 30 * time.Minute}
	enc, err := session.MarshalDelta(d)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// FuzzDecodeBatch feeds arbitrary TypeDeltas bodies to the decoder: it must never panic, and what it
// accepts must be valid deltas that survive a re-encode.
func FuzzDecodeBatch(f *testing.F) {
	enc := sampleDelta(f)
	f.Add(encodeBatch([][]byte{enc}))
	f.Add(encodeBatch([][]byte{enc, enc}))
	f.Add(encodeBatch(nil))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x91, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := decodeBatch(b)
		if err != nil {
			return
		}
		for _, d := range ds {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted an invalid delta: %v", err)
			}
			if _, err := session.MarshalDelta(d); err != nil {
				t.Fatalf("accepted delta does not re-encode: %v", err)
			}
		}
	})
}

// FuzzDecodeStream feeds arbitrary state-transfer streams to the stream decoder.
func FuzzDecodeStream(f *testing.F) {
	enc := sampleDelta(f)
	f.Add(append(append([]byte{}, enc...), enc...))
	f.Add(enc[:len(enc)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		got, err := decodeStream(bytes.NewReader(b), func(d session.Delta) {
			if d.Validate() != nil {
				t.Fatal("invalid delta passed on")
			}
			n++
		})
		if got != n || (err == nil && len(b) > 0 && n == 0) {
			t.Fatalf("count %d, passed %d, err %v", got, n, err)
		}
	})
}

// FuzzTransferRequest decodes arbitrary TypeTransfer and TypeFetch bodies.
func FuzzTransferRequest(f *testing.F) {
	f.Add([]byte{0x83, 0xa5, 't', 'o', 'k', 'e', 'n', 0xa1, 'x', 0xa4, 'a', 'd', 'd', 'r', 0xa1, 'y', 0xa7, 'm', 'e', 'm', 'b', 'e', 'r', 's', 0x90})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req transferRequest
		if decode(b, &req) == nil {
			_ = req.validate()
		}
		var fr fetchRequest
		_ = decode(b, &fr)
	})
}
