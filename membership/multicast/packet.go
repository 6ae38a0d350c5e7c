package multicast

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

// Packet layout (all integers big-endian):
//
//	0   4  magic "HRDm"
//	4   1  version (1)
//	5   1  kind (1 heartbeat, 2 leave)
//	6   1  cluster name length L (1..64)
//	7   L  cluster name
//	.   8  sequence number (grows with every packet of one incarnation)
//	.   8  timestamp, Unix nanoseconds
//	.   *  member record (wire.Encode, msgpack)
//	end 32 HMAC-SHA256 over everything before it, keyed with the cluster key
//
// The cluster name travels in the clear so that packets of another cluster
// sharing the group are told apart from forgeries (different counters)
// without computing a MAC.
const (
	magic      = "HRDm"
	version    = 1
	macLen     = sha256.Size
	minPacket  = 7 + 1 + 16 + 1 + macLen
	maxPacket  = 7 + membership.MaxNameLen + 16 + membership.MaxRecordSize + macLen
	readBuffer = 64 << 10
)

type kind byte

const (
	kindHeartbeat kind = 1
	kindLeave     kind = 2
)

// Reasons a packet is dropped; each has its own counter in Stats.
var (
	errForeign   = errors.New("packet of another cluster")
	errBadMAC    = errors.New("packet with a bad MAC")
	errMalformed = errors.New("malformed packet")
)

// packet is a decoded, authenticated heartbeat or leave.
type packet struct {
	kind kind
	seq  uint64
	ts   int64 // Unix nanoseconds
	rec  wire.Record
}

// encodePacket builds and signs a packet around an encoded record.
func encodePacket(k kind, cluster string, seq uint64, ts int64, record, key []byte) []byte {
	b := make([]byte, 0, 7+len(cluster)+16+len(record)+macLen)
	b = append(b, magic...)
	b = append(b, version, byte(k), byte(len(cluster)))
	b = append(b, cluster...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = append(b, record...)
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return mac.Sum(b)
}

// decodePacket checks and decodes b. Errors wrap errForeign, errBadMAC or
// errMalformed. It never panics.
func decodePacket(b []byte, cluster string, key []byte) (packet, error) {
	if len(b) < minPacket || len(b) > maxPacket {
		return packet{}, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	if string(b[:4]) != magic {
		return packet{}, fmt.Errorf("%w: bad magic", errMalformed)
	}
	if b[4] != version {
		return packet{}, fmt.Errorf("%w: version %d", errMalformed, b[4])
	}
	k := kind(b[5])
	if k != kindHeartbeat && k != kindLeave {
		return packet{}, fmt.Errorf("%w: kind %d", errMalformed, b[5])
	}
	n := int(b[6])
	if n == 0 || n > membership.MaxNameLen || 7+n+16+macLen > len(b) {
		return packet{}, fmt.Errorf("%w: cluster name length %d", errMalformed, n)
	}
	if string(b[7:7+n]) != cluster {
		return packet{}, fmt.Errorf("%w: %q", errForeign, b[7:7+n])
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return packet{}, errBadMAC
	}
	p := packet{kind: k}
	rest := body[7+n:]
	p.seq = binary.BigEndian.Uint64(rest)
	p.ts = int64(binary.BigEndian.Uint64(rest[8:]))
	rec, err := wire.Decode(rest[16:])
	if err != nil {
		return packet{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if rec.Cluster != cluster {
		return packet{}, fmt.Errorf("%w: record of cluster %q in a packet of %q", errMalformed, rec.Cluster, cluster)
	}
	if p.seq == 0 {
		return packet{}, fmt.Errorf("%w: sequence number 0", errMalformed)
	}
	p.rec = rec
	return p, nil
}
