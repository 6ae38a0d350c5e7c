package replication

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/session"
)

// Message types on the cluster channel (replication owns 0x0100-0x01ff).
const (
	// TypeDeltas carries a batch of session deltas; the reply lists the ids the receiver needs whole.
	TypeDeltas uint16 = 0x0101
	// TypeFetch asks for one session's full state; the reply is a batch of zero or one delta.
	TypeFetch uint16 = 0x0102
	// TypeTransfer asks a peer to stream the sessions the sender must hold (state transfer).
	TypeTransfer uint16 = 0x0103
	// TypeTransferData is the stream of a state transfer: a transferHeader, then deltas until EOF.
	TypeTransferData uint16 = 0x0104
	// TypeResync tells a peer that the sender saw it (re)appear: the peer pulls from the sender, so a
	// member that never noticed it was cut off still catches up. The body is empty.
	TypeResync uint16 = 0x0105
)

// MaxBatch bounds the deltas in one TypeDeltas message.
const MaxBatch = 4096

// ErrFrame marks a replication message that does not decode.
var ErrFrame = errors.New("replication: bad message")

// appendBatchHeader starts a batch of n pre-encoded deltas: a msgpack array header.
func appendBatchHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= 0xffff:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	default:
		return append(dst, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// encodeBatch joins pre-encoded deltas (from session.MarshalDelta) into one TypeDeltas body.
func encodeBatch(encoded [][]byte) []byte {
	size := 5
	for _, e := range encoded {
		size += len(e)
	}
	out := appendBatchHeader(make([]byte, 0, size), len(encoded))
	for _, e := range encoded {
		out = append(out, e...)
	}
	return out
}

// decodeBatch decodes a TypeDeltas body. Each delta is decoded by session.Delta's own decoder (which
// instantiates nothing the sender chooses) and validated; a bad delta fails the whole batch, naming
// its index. Trailing bytes are an error.
func decodeBatch(b []byte) ([]session.Delta, error) {
	n, off, err := batchHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%w: batch header: %w", ErrFrame, err)
	}
	if n < 0 || n > MaxBatch {
		return nil, fmt.Errorf("%w: batch of %d deltas (at most %d)", ErrFrame, n, MaxBatch)
	}
	out := make([]session.Delta, 0, min(n, 64))
	for i := range n {
		d, k, err := session.DecodeDelta(b[off:])
		if err != nil {
			return nil, fmt.Errorf("%w: delta %d: %w", ErrFrame, i, err)
		}
		off += k
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("%w: delta %d: %w", ErrFrame, i, err)
		}
		out = append(out, d)
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes after %d deltas", ErrFrame, len(b)-off, n)
	}
	return out, nil
}

// batchHeader reads the array header that starts a TypeDeltas body and returns its length and size.
// The forms appendBatchHeader writes are read directly; any other goes through msgpack's decoder.
func batchHeader(b []byte) (n, size int, err error) {
	switch {
	case len(b) >= 1 && b[0]&0xf0 == 0x90:
		return int(b[0] & 0x0f), 1, nil
	case len(b) >= 3 && b[0] == 0xdc:
		return int(b[1])<<8 | int(b[2]), 3, nil
	}
	r := bytes.NewReader(b)
	n, err = msgpack.NewDecoder(r).DecodeArrayLen()
	return n, len(b) - r.Len(), err
}

// ack is the reply to TypeDeltas.
type ack struct {
	// Need lists the sessions the receiver could apply only partly (it missed earlier versions): the
	// sender answers with their full state.
	Need []string `msgpack:"need,omitempty"`
}

// fetchRequest is the body of TypeFetch.
type fetchRequest struct {
	ID string `msgpack:"id"`
}

// transferRequest is the body of TypeTransfer.
type transferRequest struct {
	// Token names the transfer; the stream back carries it.
	Token string `msgpack:"token"`
	// Addr is the requester's channel address, where the stream goes.
	Addr string `msgpack:"addr"`
	// Members are the live node names as the requester sees them (itself included); the backup
	// manager computes placement over them.
	Members []string `msgpack:"members"`
}

// transferHeader opens a TypeTransferData stream (as the stream's message body).
type transferHeader struct {
	Token string `msgpack:"token"`
}

// MaxTokenLen bounds transfer tokens.
const MaxTokenLen = 64

// maxMembers bounds transferRequest.Members.
const maxMembers = 4096

func (t *transferRequest) validate() error {
	switch {
	case t.Token == "" || len(t.Token) > MaxTokenLen:
		return fmt.Errorf("%w: transfer token of %d bytes", ErrFrame, len(t.Token))
	case t.Addr == "" || len(t.Addr) > 256:
		return fmt.Errorf("%w: transfer address of %d bytes", ErrFrame, len(t.Addr))
	case len(t.Members) > maxMembers:
		return fmt.Errorf("%w: %d members in a transfer request", ErrFrame, len(t.Members))
	}
	return nil
}

func decode(b []byte, v any) error {
	if err := channel.Decode(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return nil
}
