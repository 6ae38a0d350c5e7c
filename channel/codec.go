package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// maxCodecDepth bounds the nesting of arrays and maps in a body.
const maxCodecDepth = 32

// ErrCodec marks a body that Encode or Decode refuses.
var ErrCodec = errors.New("channel: codec")

// Encode marshals v, a struct (or pointer to one) with explicit msgpack
// fields, into a message body. It refuses values that Decode would refuse
// (extension types other than timestamps, too deep nesting).
func Encode(v any) ([]byte, error) {
	if !isStruct(reflect.TypeOf(v)) {
		return nil, fmt.Errorf("%w: encode %T: want a struct or a pointer to one", ErrCodec, v)
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %T: %w", ErrCodec, v, err)
	}
	if err := checkMsgpack(b); err != nil {
		return nil, fmt.Errorf("%w: encode %T: %w", ErrCodec, v, err)
	}
	return b, nil
}

// Decode unmarshals a body into v, which must be a non-nil pointer to a
// struct: the receiver picks the concrete type, never the sender. The body
// is checked first: one msgpack value, no trailing bytes, nesting at most
// 32 deep, lengths within the body, and no extension types except the
// standard timestamp (-1). Unknown fields are ignored, so members of
// adjacent versions interoperate.
func Decode(data []byte, v any) (err error) {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || reflect.ValueOf(v).IsNil() {
		return fmt.Errorf("%w: decode into %T: want a non-nil pointer to a struct", ErrCodec, v)
	}
	if err := checkMsgpack(data); err != nil {
		return fmt.Errorf("%w: decode into %T: %w", ErrCodec, v, err)
	}
	// msgpack/v5 panics on some inputs (nil for a struct-typed field such as a time.Time): a bad
	// body must be an error, never a crash.
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("%w: decode into %T: malformed body (%v)", ErrCodec, v, x)
		}
	}()
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decode into %T: %w", ErrCodec, v, err)
	}
	return nil
}

func isStruct(t reflect.Type) bool {
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t != nil && t.Kind() == reflect.Struct
}

// checkMsgpack walks one msgpack value without decoding it.
func checkMsgpack(b []byte) error {
	stack := []uint64{1} // values still to read, per open container
	pos := 0
	for len(stack) > 0 {
		if stack[len(stack)-1] == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		stack[len(stack)-1]--
		if pos >= len(b) {
			return fmt.Errorf("truncated at byte %d", pos)
		}
		skip, children, err := msgpackItem(b[pos:])
		if err != nil {
			return fmt.Errorf("at byte %d: %w", pos, err)
		}
		if skip > uint64(len(b)-pos) || children > uint64(len(b)-pos) {
			return fmt.Errorf("at byte %d: length exceeds the %d bytes left", pos, len(b)-pos)
		}
		pos += int(skip)
		if children > 0 {
			if len(stack) > maxCodecDepth {
				return fmt.Errorf("at byte %d: nested deeper than %d", pos, maxCodecDepth)
			}
			stack = append(stack, children)
		}
	}
	if pos != len(b) {
		return fmt.Errorf("%d trailing bytes after the value", len(b)-pos)
	}
	return nil
}

// msgpackItem reads the item starting b: how many bytes it spans itself
// (header and, for scalars, payload) and how many values it contains.
func msgpackItem(b []byte) (skip, children uint64, err error) {
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3 && c != 0xc1):
		return 1, 0, nil
	case c >= 0x80 && c <= 0x8f:
		return 1, 2 * uint64(c&0x0f), nil
	case c >= 0x90 && c <= 0x9f:
		return 1, uint64(c & 0x0f), nil
	case c >= 0xa0 && c <= 0xbf:
		return 1 + uint64(c&0x1f), 0, nil
	}
	size := func(n int) (uint64, error) {
		if len(b) < 1+n {
			return 0, errors.New("truncated length")
		}
		switch n {
		case 1:
			return uint64(b[1]), nil
		case 2:
			return uint64(binary.BigEndian.Uint16(b[1:])), nil
		}
		return uint64(binary.BigEndian.Uint32(b[1:])), nil
	}
	switch c {
	case 0xcc, 0xd0:
		return 2, 0, nil
	case 0xcd, 0xd1:
		return 3, 0, nil
	case 0xca, 0xce, 0xd2:
		return 5, 0, nil
	case 0xcb, 0xcf, 0xd3:
		return 9, 0, nil
	case 0xc4, 0xd9: // bin8, str8
		n, err := size(1)
		return 2 + n, 0, err
	case 0xc5, 0xda:
		n, err := size(2)
		return 3 + n, 0, err
	case 0xc6, 0xdb:
		n, err := size(4)
		return 5 + n, 0, err
	case 0xdc:
		n, err := size(2)
		return 3, n, err
	case 0xdd:
		n, err := size(4)
		return 5, n, err
	case 0xde:
		n, err := size(2)
		return 3, 2 * n, err
	case 0xdf:
		n, err := size(4)
		return 5, 2 * n, err
	case 0xd6: // fixext4: timestamp32 only
		if len(b) >= 2 && int8(b[1]) == -1 {
			return 6, 0, nil
		}
	case 0xd7: // fixext8: timestamp64 only
		if len(b) >= 2 && int8(b[1]) == -1 {
			return 10, 0, nil
		}
	case 0xc7: // ext8 of 12 bytes: timestamp96 only
		if len(b) >= 3 && b[1] == 12 && int8(b[2]) == -1 {
			return 15, 0, nil
		}
	}
	return 0, 0, fmt.Errorf("msgpack code 0x%02x (extension or reserved) not allowed", c)
}
