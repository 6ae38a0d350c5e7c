// Package wire encodes and decodes herd member records (msgpack with
// explicit short tags) for the membership providers. Decoders check sizes
// before allocating and never panic on hostile input.
package wire

import (
	"encoding/binary"
	"fmt"
)

// maxDepth bounds container nesting in a record (a record needs 3).
const maxDepth = 8

// skim checks that b holds exactly one well-formed msgpack value nested at
// most maxDepth deep, and that every declared length fits in the bytes that
// remain. After skim succeeds, a decoder's allocations are bounded by len(b).
func skim(b []byte) error {
	// pending[d] counts values still expected at depth d.
	var pending [maxDepth + 1]int
	depth, pos := 0, 0
	pending[0] = 1
	for {
		for depth >= 0 && pending[depth] == 0 {
			depth--
		}
		if depth < 0 {
			break
		}
		if pos >= len(b) {
			return fmt.Errorf("truncated at byte %d", pos)
		}
		pending[depth]--
		n, children, err := header(b[pos:])
		if err != nil {
			return fmt.Errorf("byte %d: %w", pos, err)
		}
		pos += n
		if children > 0 {
			if children > len(b)-pos {
				return fmt.Errorf("byte %d: container of %d items in %d bytes", pos, children, len(b)-pos)
			}
			if depth == maxDepth {
				return fmt.Errorf("byte %d: nested deeper than %d", pos, maxDepth)
			}
			depth++
			pending[depth] = children
		}
	}
	if pos != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-pos)
	}
	return nil
}

// header returns the size of the value starting at b[0] excluding container
// children (so including payload for scalars), and the number of child values
// for arrays (n) and maps (2n).
func header(b []byte) (size, children int, err error) {
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, 0, nil
	case c >= 0x80 && c <= 0x8f:
		return 1, 2 * int(c&0x0f), nil
	case c >= 0x90 && c <= 0x9f:
		return 1, int(c & 0x0f), nil
	case c >= 0xa0 && c <= 0xbf:
		return payload(b, 1, int(c&0x1f))
	}
	switch c {
	case 0xcc, 0xd0:
		return payload(b, 1, 1)
	case 0xcd, 0xd1:
		return payload(b, 1, 2)
	case 0xca, 0xce, 0xd2:
		return payload(b, 1, 4)
	case 0xcb, 0xcf, 0xd3:
		return payload(b, 1, 8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext: type byte + 1,2,4,8,16
		return payload(b, 1, 1+1<<(c-0xd4))
	case 0xc4, 0xd9: // bin8, str8
		return lenPayload(b, 1, 0)
	case 0xc5, 0xda:
		return lenPayload(b, 2, 0)
	case 0xc6, 0xdb:
		return lenPayload(b, 4, 0)
	case 0xc7: // ext8/16/32: length then type byte
		return lenPayload(b, 1, 1)
	case 0xc8:
		return lenPayload(b, 2, 1)
	case 0xc9:
		return lenPayload(b, 4, 1)
	case 0xdc, 0xdd, 0xde, 0xdf:
		w := 2
		if c == 0xdd || c == 0xdf {
			w = 4
		}
		n, err := readLen(b, w)
		if err != nil {
			return 0, 0, err
		}
		if c >= 0xde {
			n *= 2
		}
		return 1 + w, n, nil
	}
	return 0, 0, fmt.Errorf("invalid msgpack code 0x%02x", c)
}

func payload(b []byte, hdr, n int) (int, int, error) {
	if hdr+n > len(b) {
		return 0, 0, fmt.Errorf("value of %d bytes in %d", hdr+n, len(b))
	}
	return hdr + n, 0, nil
}

func lenPayload(b []byte, w, extra int) (int, int, error) {
	n, err := readLen(b, w)
	if err != nil {
		return 0, 0, err
	}
	return payload(b, 1+w, n+extra)
}

// readLen reads a w-byte big-endian length after the code byte; lengths are
// capped far below int overflow because they must fit in the input anyway.
func readLen(b []byte, w int) (int, error) {
	if len(b) < 1+w {
		return 0, fmt.Errorf("truncated length")
	}
	var n uint64
	switch w {
	case 1:
		n = uint64(b[1])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	if n > 1<<24 {
		return 0, fmt.Errorf("length %d too large", n)
	}
	return int(n), nil
}
