package wire

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// reader decodes msgpack from a byte slice, bounding every declared length
// by the bytes that remain so that lying headers cannot force allocations.
type reader struct {
	br  *bytes.Reader
	dec *msgpack.Decoder
}

func newReader(b []byte) *reader {
	br := bytes.NewReader(b)
	return &reader{br: br, dec: msgpack.NewDecoder(br)}
}

func malformed(what, format string, args ...any) error {
	return &ValueError{Type: what, Reason: fmt.Sprintf(format, args...)}
}

// bytesN reads a str or bin item; nil reads as (nil, false).
func (rd *reader) bytesN(what string) ([]byte, bool, error) {
	n, err := rd.dec.DecodeBytesLen()
	if err != nil {
		return nil, false, malformed(what, "%v", err)
	}
	if n < 0 {
		return nil, false, nil
	}
	if n > rd.br.Len() {
		return nil, false, malformed(what, "length %d exceeds the %d remaining bytes", n, rd.br.Len())
	}
	b := make([]byte, n)
	if err := rd.dec.ReadFull(b); err != nil {
		return nil, false, malformed(what, "%v", err)
	}
	return b, true, nil
}

func (rd *reader) str(what string) (string, error) {
	b, ok, err := rd.bytesN(what)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", malformed(what, "nil where a string was expected")
	}
	return string(b), nil
}

// arrayLen reads an array header; nil reads as -1.
func (rd *reader) arrayLen(what string) (int, error) {
	n, err := rd.dec.DecodeArrayLen()
	if err != nil {
		return 0, malformed(what, "%v", err)
	}
	if n > rd.br.Len() {
		return 0, malformed(what, "%d elements exceed the %d remaining bytes", n, rd.br.Len())
	}
	return n, nil
}

// mapLen reads a map header; nil reads as -1.
func (rd *reader) mapLen(what string) (int, error) {
	n, err := rd.dec.DecodeMapLen()
	if err != nil {
		return 0, malformed(what, "%v", err)
	}
	if n > rd.br.Len()/2 {
		return 0, malformed(what, "%d entries exceed the %d remaining bytes", n, rd.br.Len())
	}
	return n, nil
}

func (rd *reader) intRange(what string, lo, hi int64) (int64, error) {
	n, err := rd.dec.DecodeInt64()
	if err != nil {
		return 0, malformed(what, "%v", err)
	}
	if n < lo || n > hi {
		return 0, malformed(what, "%d out of range", n)
	}
	return n, nil
}

func (rd *reader) uintMax(what string, hi uint64) (uint64, error) {
	n, err := rd.dec.DecodeUint64()
	if err != nil {
		return 0, malformed(what, "%v", err)
	}
	if n > hi {
		return 0, malformed(what, "%d out of range", n)
	}
	return n, nil
}

func (r *Registry) decode(rd *reader, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, malformed("value", "nested deeper than %d", MaxDepth)
	}
	n, err := rd.arrayLen("envelope")
	if err != nil {
		return nil, err
	}
	if n != 2 {
		return nil, malformed("envelope", "want [tag, payload], got %d elements", n)
	}
	tag, err := rd.str("tag")
	if err != nil {
		return nil, err
	}
	if v, ok, err := decodeScalar(rd, tag); ok || err != nil {
		return v, err
	}
	if v, ok, err := r.decodeContainer(rd, tag, depth); ok || err != nil {
		return v, err
	}
	return r.decodeRegistered(rd, tag)
}

func decodeScalar(rd *reader, tag string) (any, bool, error) {
	var v any
	var err error
	switch tag {
	case tagNil:
		err = rd.dec.DecodeNil()
	case tagBool:
		v, err = rd.dec.DecodeBool()
	case tagInt:
		var n int64
		n, err = rd.intRange(tag, math.MinInt, math.MaxInt)
		v = int(n)
	case tagInt8:
		var n int64
		n, err = rd.intRange(tag, math.MinInt8, math.MaxInt8)
		v = int8(n)
	case tagInt16:
		var n int64
		n, err = rd.intRange(tag, math.MinInt16, math.MaxInt16)
		v = int16(n)
	case tagInt32:
		var n int64
		n, err = rd.intRange(tag, math.MinInt32, math.MaxInt32)
		v = int32(n)
	case tagInt64:
		v, err = rd.intRange(tag, math.MinInt64, math.MaxInt64)
	case tagDuration:
		var n int64
		n, err = rd.intRange(tag, math.MinInt64, math.MaxInt64)
		v = time.Duration(n)
	case tagUint:
		var n uint64
		n, err = rd.uintMax(tag, math.MaxUint)
		v = uint(n)
	case tagUint8:
		var n uint64
		n, err = rd.uintMax(tag, math.MaxUint8)
		v = uint8(n)
	case tagUint16:
		var n uint64
		n, err = rd.uintMax(tag, math.MaxUint16)
		v = uint16(n)
	case tagUint32:
		var n uint64
		n, err = rd.uintMax(tag, math.MaxUint32)
		v = uint32(n)
	case tagUint64:
		v, err = rd.uintMax(tag, math.MaxUint64)
	case tagFloat32:
		v, err = rd.dec.DecodeFloat32()
	case tagFloat64:
		v, err = rd.dec.DecodeFloat64()
	case tagString:
		v, err = rd.str(tag)
	case tagBytes:
		var b []byte
		b, _, err = rd.bytesN(tag)
		v = b
	case tagTime:
		v, err = decodeTime(rd)
	default:
		return nil, false, nil
	}
	if err != nil {
		if _, ok := err.(*ValueError); !ok {
			err = malformed(tag, "%v", err)
		}
		return nil, true, err
	}
	return v, true, nil
}

func decodeTime(rd *reader) (time.Time, error) {
	b, ok, err := rd.bytesN(tagTime)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, malformed(tagTime, "nil payload")
	}
	var t time.Time
	if err := t.UnmarshalBinary(b); err != nil {
		return time.Time{}, malformed(tagTime, "%v", err)
	}
	return t, nil
}

func (r *Registry) decodeContainer(rd *reader, tag string, depth int) (any, bool, error) {
	var v any
	var err error
	switch tag {
	case tagStrings:
		v, err = decodeSlice(rd, tag, func() (string, error) { return rd.str(tag) })
	case tagInts:
		v, err = decodeSlice(rd, tag, func() (int, error) {
			n, err := rd.intRange(tag, math.MinInt, math.MaxInt)
			return int(n), err
		})
	case tagInt64s:
		v, err = decodeSlice(rd, tag, func() (int64, error) { return rd.intRange(tag, math.MinInt64, math.MaxInt64) })
	case tagFloat64s:
		v, err = decodeSlice(rd, tag, rd.dec.DecodeFloat64)
	case tagAnys:
		v, err = decodeSlice(rd, tag, func() (any, error) { return r.decode(rd, depth+1) })
	case tagMapString:
		v, err = decodeMap(rd, tag, func() (string, error) { return rd.str(tag) })
	case tagMapAny:
		v, err = decodeMap(rd, tag, func() (any, error) { return r.decode(rd, depth+1) })
	case tagMapAnyAny:
		v, err = r.decodeAnyMap(rd, depth)
	default:
		return nil, false, nil
	}
	if err != nil {
		if _, ok := err.(*ValueError); !ok {
			err = malformed(tag, "%v", err)
		}
		return nil, true, err
	}
	return v, true, nil
}

func decodeSlice[T any](rd *reader, tag string, each func() (T, error)) ([]T, error) {
	n, err := rd.arrayLen(tag)
	if err != nil || n < 0 {
		return nil, err
	}
	s := make([]T, 0, n)
	for range n {
		e, err := each()
		if err != nil {
			return nil, err
		}
		s = append(s, e)
	}
	return s, nil
}

func decodeMap[V any](rd *reader, tag string, val func() (V, error)) (map[string]V, error) {
	n, err := rd.mapLen(tag)
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]V, n)
	for range n {
		k, err := rd.str(tag + " key")
		if err != nil {
			return nil, err
		}
		v, err := val()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

func (r *Registry) decodeAnyMap(rd *reader, depth int) (map[any]any, error) {
	n, err := rd.mapLen(tagMapAnyAny)
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[any]any, n)
	for range n {
		k, err := r.decode(rd, depth+1)
		if err != nil {
			return nil, err
		}
		if !comparable(k) {
			return nil, malformed(tagMapAnyAny, "key of type %T cannot be a map key", k)
		}
		v, err := r.decode(rd, depth+1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// comparable reports whether v can be a key of a map[any]any without a
// runtime panic.
func comparable(v any) bool {
	if v == nil {
		return true
	}
	return reflect.ValueOf(v).Comparable()
}

func (r *Registry) decodeRegistered(rd *reader, tag string) (any, error) {
	name, ptr := strings.CutPrefix(tag, tagPtrPrefix)
	name, ok := strings.CutPrefix(name, tagRegPrefix)
	if !ok {
		return nil, malformed(tag, "unknown type tag")
	}
	t, ok := r.typeOf(name)
	if !ok {
		return nil, malformed(tag, "type name %q is not registered", name)
	}
	b, present, err := rd.bytesN(tag)
	if err != nil {
		return nil, err
	}
	if !present {
		if ptr {
			return reflect.Zero(reflect.PointerTo(t)).Interface(), nil
		}
		return nil, malformed(tag, "nil payload for a value type")
	}
	p, err := unmarshalRegistered(b, t)
	if err != nil {
		return nil, malformed(tag, "%v", err)
	}
	if ptr {
		return p.Interface(), nil
	}
	return p.Elem().Interface(), nil
}

// unmarshalRegistered decodes b into a new value of the registered type t,
// after checking that no container in b declares more elements than b has
// bytes (msgpack would otherwise preallocate up to a million entries).
func unmarshalRegistered(b []byte, t reflect.Type) (p reflect.Value, err error) {
	rd := newReader(b)
	if err := checkBounds(rd, 0); err != nil {
		return reflect.Value{}, err
	}
	if rd.br.Len() != 0 {
		return reflect.Value{}, fmt.Errorf("%d trailing bytes", rd.br.Len())
	}
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("msgpack decoder panicked: %v", x)
		}
	}()
	p = reflect.New(t)
	if err := msgpack.Unmarshal(b, p.Interface()); err != nil {
		return reflect.Value{}, err
	}
	return p, nil
}

// checkBounds walks one msgpack item, failing when nesting exceeds MaxDepth
// or a declared length exceeds the remaining input.
func checkBounds(rd *reader, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("nested deeper than %d", MaxDepth)
	}
	c, err := rd.dec.PeekCode()
	if err != nil {
		return err
	}
	n := 0
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		m, err := rd.mapLen("map")
		if err != nil {
			return err
		}
		n = 2 * m
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		if n, err = rd.arrayLen("array"); err != nil {
			return err
		}
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		l, err := rd.dec.DecodeBytesLen()
		if err != nil {
			return err
		}
		if l > rd.br.Len() {
			return fmt.Errorf("length %d exceeds the %d remaining bytes", l, rd.br.Len())
		}
		_, err = rd.br.Seek(int64(max(l, 0)), 1)
		return err
	default:
		return rd.dec.Skip()
	}
	for range n {
		if err := checkBounds(rd, depth+1); err != nil {
			return err
		}
	}
	return nil
}
