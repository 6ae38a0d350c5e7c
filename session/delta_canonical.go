package session

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// DecodeDelta decodes one delta from the start of b and returns it with the number of bytes it
// took; it does not validate (see Validate). A delta in the form MarshalDelta writes, which is every
// delta a herd member sends, is read straight from b; anything else (other msgpack encodings of the
// same values, unknown fields, garbage) goes through msgpack/v5's decoder as DecodeMsgpack does, so
// both ways accept the same input and give the same Delta (a differential fuzz test holds them to
// it).
func DecodeDelta(b []byte) (Delta, int, error) {
	if d, n, ok := decodeCanonical(b); ok {
		return d, n, nil
	}
	r := bytes.NewReader(b)
	var d Delta
	if err := d.DecodeMsgpack(msgpack.NewDecoder(r)); err != nil {
		return Delta{}, 0, err
	}
	return d, len(b) - r.Len(), nil
}

// decodeCanonical reads a delta whose every value has the msgpack type appendDelta gives it (field
// order is free, each field's last occurrence wins, as with the library). It declines (ok false)
// whatever else it meets, unknown fields included; a length that lies costs it at most a map or
// slice sized for 64 entries, since every entry must then be read from b.
func decodeCanonical(b []byte) (d Delta, n int, ok bool) {
	r := canonReader{b: b}
	fields, ok := r.mapLen()
	if !ok {
		return Delta{}, 0, false
	}
	for range fields {
		key, ok := r.strBytes()
		if !ok {
			return Delta{}, 0, false
		}
		switch string(key) {
		case "id":
			d.ID, ok = r.str()
		case "oldId":
			d.OldID, ok = r.str()
		case "app":
			d.App, ok = r.str()
		case "kind":
			var k uint64
			if k, ok = r.uint(); k > 255 {
				ok = false // the library path reports it
			}
			d.Kind = Kind(k)
		case "v":
			d.Version, ok = r.uint()
		case "full":
			d.Full, ok = r.bool()
		case "set":
			d.Set, ok = r.attrs()
		case "del":
			d.Deleted, ok = r.strs()
		case "created":
			d.Created, ok = r.time()
		case "access":
			d.LastAccess, ok = r.time()
		case "maxInactive":
			var x int64
			x, ok = r.int()
			d.MaxInactive = time.Duration(x)
		default:
			ok = false
		}
		if !ok {
			return Delta{}, 0, false
		}
	}
	return d, r.i, true
}

// canonReader reads msgpack values of the types appendDelta writes; every method reports false on
// any other type or on a value that runs past the end.
type canonReader struct {
	b []byte
	i int
}

func (r *canonReader) code() (byte, bool) {
	if r.i >= len(r.b) {
		return 0, false
	}
	r.i++
	return r.b[r.i-1], true
}

// be reads an n-byte big-endian unsigned integer (n is 1, 2, 4 or 8).
func (r *canonReader) be(n int) (uint64, bool) {
	if len(r.b)-r.i < n {
		return 0, false
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	switch n {
	case 1:
		return uint64(p[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), true
	}
	return binary.BigEndian.Uint64(p), true
}

// length reads the length that follows a str8/16/32, bin8/16/32, map16/32 or array16/32 code, whose
// width is given.
func (r *canonReader) length(width int) (int, bool) {
	n, ok := r.be(width)
	if !ok || n > uint64(len(r.b)) { // longer than the whole input: cannot be there
		return 0, false
	}
	return int(n), true
}

func (r *canonReader) take(n int) ([]byte, bool) {
	if len(r.b)-r.i < n {
		return nil, false
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	return p, true
}

// header reads a map or array header: fix is the base code of the short form (length in its low
// four bits), c16 the code with a 16-bit length, c16+1 the one with a 32-bit length.
func (r *canonReader) header(fix, c16 byte) (int, bool) {
	c, ok := r.code()
	switch {
	case !ok:
		return 0, false
	case c&0xf0 == fix:
		return int(c & 0x0f), true
	case c == c16:
		return r.length(2)
	case c == c16+1:
		return r.length(4)
	}
	return 0, false
}

func (r *canonReader) mapLen() (int, bool)   { return r.header(0x80, 0xde) }
func (r *canonReader) arrayLen() (int, bool) { return r.header(0x90, 0xdc) }

// blob reads the bytes of a str (fixstr too when fix) or bin value: c8 is the code with an 8-bit
// length, c8+1 and c8+2 those with 16- and 32-bit lengths.
func (r *canonReader) blob(fix bool, c8 byte) ([]byte, bool) {
	c, ok := r.code()
	n := 0
	switch {
	case !ok:
		return nil, false
	case fix && c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == c8:
		n, ok = r.length(1)
	case c == c8+1:
		n, ok = r.length(2)
	case c == c8+2:
		n, ok = r.length(4)
	default:
		return nil, false
	}
	if !ok {
		return nil, false
	}
	return r.take(n)
}

func (r *canonReader) strBytes() ([]byte, bool) { return r.blob(true, 0xd9) }

func (r *canonReader) str() (string, bool) {
	p, ok := r.strBytes()
	return string(p), ok
}

func (r *canonReader) strs() ([]string, bool) {
	n, ok := r.arrayLen()
	if !ok {
		return nil, false
	}
	s := make([]string, 0, min(n, 64))
	for range n {
		k, ok := r.str()
		if !ok {
			return nil, false
		}
		s = append(s, k)
	}
	return s, true
}

// attrs reads the attribute map: string keys, bin values, each value copied out of the input.
func (r *canonReader) attrs() (map[string][]byte, bool) {
	n, ok := r.mapLen()
	if !ok {
		return nil, false
	}
	m := make(map[string][]byte, min(n, 64))
	for range n {
		k, ok := r.str()
		if !ok {
			return nil, false
		}
		p, ok := r.blob(false, 0xc4)
		if !ok {
			return nil, false
		}
		m[k] = append(make([]byte, 0, len(p)), p...)
	}
	return m, true
}

func (r *canonReader) uint() (uint64, bool) {
	c, ok := r.code()
	switch {
	case !ok:
		return 0, false
	case c <= 0x7f:
		return uint64(c), true
	case c == 0xcc:
		return r.be(1)
	case c == 0xcd:
		return r.be(2)
	case c == 0xce:
		return r.be(4)
	case c == 0xcf:
		return r.be(8)
	}
	return 0, false
}

// int reads what appendInt writes: a non-negative value as an unsigned integer, a negative one as
// int64. A uint64 above MaxInt64 wraps, as the library's DecodeInt64 does.
func (r *canonReader) int() (int64, bool) {
	if r.i < len(r.b) && r.b[r.i] == 0xd3 {
		r.i++
		u, ok := r.be(8)
		return int64(u), ok
	}
	u, ok := r.uint()
	return int64(u), ok
}

func (r *canonReader) bool() (bool, bool) {
	c, ok := r.code()
	switch {
	case ok && c == 0xc2:
		return false, true
	case ok && c == 0xc3:
		return true, true
	}
	return false, false
}

// time reads the timestamp extension in its 96-bit form (ext8, length 12, type -1), as the library
// does: time.Unix in the local zone, UTC for the zero time.
func (r *canonReader) time() (time.Time, bool) {
	h, ok := r.take(3)
	if !ok || h[0] != 0xc7 || h[1] != 12 || h[2] != 0xff {
		return time.Time{}, false
	}
	nsec, ok1 := r.be(4)
	sec, ok2 := r.be(8)
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	t := time.Unix(int64(sec), int64(nsec))
	if t.IsZero() {
		t = t.UTC()
	}
	return t, true
}
