package channel

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// Frame kinds (the first plaintext byte of a record).
const (
	kindAuth    byte = 1  // handshake: body is the auth payload
	kindMsg     byte = 2  // one-way message
	kindRequest byte = 3  // request; id correlates the reply
	kindReply   byte = 4  // reply to request id
	kindError   byte = 5  // error reply to request id; type is a code, body the text
	kindPing    byte = 6  // keepalive
	kindPong    byte = 7  // keepalive answer
	kindOpen    byte = 8  // stream: open with type and header body
	kindData    byte = 9  // stream: chunk
	kindEnd     byte = 10 // stream: sender finished
	kindCredit  byte = 11 // stream: receiver grants id more bytes
	kindResult  byte = 12 // stream: receiver's handler result; type is a code, body the text
	kindMax          = kindResult
)

// frame is one decoded record. body aliases the record buffer: one of its
// own, which its receiver may keep, except for a message lent to a
// HandleTransient handler, whose buffer the connection reads into again.
type frame struct {
	kind byte
	typ  uint16
	id   uint64
	body []byte
}

// newRecord lays out a record ready for recordCipher.seal: room for the
// length prefix, the header, a copy of body and the tag.
func newRecord(kind byte, typ uint16, id uint64, body []byte) []byte {
	rec := make([]byte, lenSize+hdrLen+len(body)+tagSize)
	fillRecord(rec, kind, typ, id, body)
	return rec
}

// fillRecord writes the header and body of a record of the right length.
func fillRecord(rec []byte, kind byte, typ uint16, id uint64, body []byte) {
	h := rec[lenSize:]
	h[0] = kind
	binary.BigEndian.PutUint16(h[1:], typ)
	binary.BigEndian.PutUint64(h[3:], id)
	copy(h[hdrLen:], body)
}

// records recycles the buffers conn.write seals records in: a record is garbage as soon as it is
// written, and replication writes one per message (tens of KiB when changes are batched).
var records sync.Pool // of *[]byte

// maxPooledRecord bounds the buffers kept in records; larger records are left to the GC.
const maxPooledRecord = 256 << 10

// pooledRecord is newRecord in a buffer from records; give it back with releaseRecord once written.
func pooledRecord(kind byte, typ uint16, id uint64, body []byte) *[]byte {
	n := lenSize + hdrLen + len(body) + tagSize
	bp, _ := records.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		if n > maxPooledRecord {
			rec := newRecord(kind, typ, id, body)
			return &rec
		}
		b := make([]byte, n, max(n, 4<<10))
		bp = &b
	}
	*bp = (*bp)[:n]
	fillRecord(*bp, kind, typ, id, body)
	return bp
}

func releaseRecord(bp *[]byte) {
	if cap(*bp) <= maxPooledRecord {
		records.Put(bp)
	}
}

// parseFrame decodes an opened record's plaintext.
func parseFrame(plain []byte) (frame, error) {
	if len(plain) < hdrLen {
		return frame{}, fmt.Errorf("%w: %d-byte frame is shorter than its %d-byte header", ErrBadFrame, len(plain), hdrLen)
	}
	f := frame{
		kind: plain[0],
		typ:  binary.BigEndian.Uint16(plain[1:]),
		id:   binary.BigEndian.Uint64(plain[3:]),
		body: plain[hdrLen:],
	}
	if f.kind == 0 || f.kind > kindMax {
		return frame{}, fmt.Errorf("%w: unknown frame kind %d", ErrBadFrame, f.kind)
	}
	return f, nil
}

// readRecord reads, opens and parses one record whose body may be at most
// maxBody bytes. It returns the bytes read from the wire. Errors wrapping
// ErrBadFrame mean the peer sent something invalid; others are I/O errors.
func readRecord(r io.Reader, rc *recordCipher, maxBody int) (frame, int, error) {
	f, n, _, err := readRecordInto(r, rc, maxBody, nil)
	return f, n, err
}

// readRecordInto is readRecord reading into buf when it is large enough, into a new buffer
// otherwise; rec is the buffer used (the frame's body lies in it).
func readRecordInto(r io.Reader, rc *recordCipher, maxBody int, buf []byte) (f frame, read int, rec []byte, err error) {
	var prefix [lenSize]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return frame{}, 0, nil, err
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n < overhead || uint64(n) > uint64(maxBody)+overhead {
		return frame{}, lenSize, nil, fmt.Errorf("%w: record length %d outside [%d, %d]", ErrBadFrame, n, overhead, maxBody+overhead)
	}
	if uint64(cap(buf)) >= uint64(n) {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, lenSize, buf, fmt.Errorf("%w: truncated record: %w", ErrBadFrame, err)
	}
	plain, err := rc.open(prefix[:], buf)
	if err != nil {
		return frame{}, lenSize + int(n), buf, fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	f, err = parseFrame(plain)
	return f, lenSize + int(n), buf, err
}
