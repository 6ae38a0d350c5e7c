package multicast

import (
	"errors"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

const testSecret = "0123456789abcdef-test-secret"

func testKey(t testing.TB, cluster string) []byte {
	t.Helper()
	k, err := membership.DeriveKey(testSecret, cluster, membership.PurposeMulticastHMAC, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testRecord(t testing.TB, cluster, name string, inc, rev uint64) []byte {
	t.Helper()
	b, err := wire.Encode(wire.Record{Cluster: cluster, Rev: rev, Member: membership.Member{
		Name: name, Route: name, HTTPAddr: "127.0.0.1:8081", ChannelAddr: "127.0.0.1:4001",
		Incarnation: inc, Meta: membership.Meta{Version: "1.0", Apps: []membership.App{{Name: "counter", Version: "3", Context: "/counter"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPacketRoundTrip(t *testing.T) {
	key := testKey(t, "demo")
	ts := time.Now().UnixNano()
	for _, k := range []kind{kindHeartbeat, kindLeave} {
		b := encodePacket(k, "demo", 7, ts, testRecord(t, "demo", "node1", 42, 3), key)
		p, err := decodePacket(b, "demo", key)
		if err != nil {
			t.Fatalf("kind %d: %v", k, err)
		}
		if p.kind != k || p.seq != 7 || p.ts != ts || p.rec.Rev != 3 || p.rec.Member.Name != "node1" ||
			p.rec.Member.Incarnation != 42 || len(p.rec.Member.Meta.Apps) != 1 {
			t.Fatalf("kind %d: decoded %+v", k, p)
		}
	}
}

func TestDecodePacketRejects(t *testing.T) {
	key := testKey(t, "demo")
	good := encodePacket(kindHeartbeat, "demo", 1, 1, testRecord(t, "demo", "node1", 42, 1), key)
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errMalformed},
		{"short", good[:20], errMalformed},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), errMalformed},
		{"bad version", mutate(func(b []byte) []byte { b[4] = 9; return b }), errMalformed},
		{"bad kind", mutate(func(b []byte) []byte { b[5] = 0; return b }), errMalformed},
		{"zero cluster len", mutate(func(b []byte) []byte { b[6] = 0; return b }), errMalformed},
		{"huge cluster len", mutate(func(b []byte) []byte { b[6] = 255; return b }), errMalformed},
		{"other cluster", encodePacket(kindHeartbeat, "other", 1, 1, testRecord(t, "other", "x", 1, 1), key), errForeign},
		{"flipped body bit", mutate(func(b []byte) []byte { b[20] ^= 1; return b }), errBadMAC},
		{"flipped mac bit", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), errBadMAC},
		{"truncated mac", good[:len(good)-1], errBadMAC},
		{"wrong key", encodePacket(kindHeartbeat, "demo", 1, 1, testRecord(t, "demo", "x", 1, 1), []byte("wrong")), errBadMAC},
		{"garbage record", encodePacket(kindHeartbeat, "demo", 1, 1, []byte{0xc1, 0x00}, key), errMalformed},
		{"record of other cluster", encodePacket(kindHeartbeat, "demo", 1, 1, testRecord(t, "other", "x", 1, 1), key), errMalformed},
		{"seq zero", encodePacket(kindHeartbeat, "demo", 0, 1, testRecord(t, "demo", "x", 1, 1), key), errMalformed},
		{"oversized", make([]byte, maxPacket+1), errMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePacket(tc.b, "demo", key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecodePacket feeds arbitrary datagrams to the decoder, and also signs
// arbitrary bodies with the right key so the fuzzer reaches the record
// decoder behind the MAC. Neither may panic.
func FuzzDecodePacket(f *testing.F) {
	key := testKey(f, "demo")
	rec := testRecord(f, "demo", "node1", 42, 1)
	f.Add(encodePacket(kindHeartbeat, "demo", 1, 1, rec, key))
	f.Add(encodePacket(kindLeave, "demo", 9, 1, rec, key))
	f.Add(encodePacket(kindHeartbeat, "other", 1, 1, rec, key))
	f.Add([]byte("HRDm\x01\x01\x04demo"))
	f.Add(rec)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodePacket(b, "demo", key); err == nil && p.rec.Member.Name == "" {
			t.Fatal("accepted a packet without a member name")
		}
		signed := encodePacket(kindHeartbeat, "demo", 1, 1, b, key)
		if p, err := decodePacket(signed, "demo", key); err == nil {
			if verr := p.rec.Member.Validate(); verr != nil {
				t.Fatalf("accepted an invalid record: %v", verr)
			}
		}
	})
}
