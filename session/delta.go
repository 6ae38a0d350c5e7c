package session

import (
	"fmt"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Kind says what a Delta reports.
type Kind uint8

// Delta kinds.
const (
	// KindNone is the zero Kind; no Delta has it.
	KindNone Kind = iota
	// KindCreated: a new session; the Delta holds its full state (Full).
	KindCreated
	// KindChanged: attributes or MaxInactive changed; Set and Deleted hold
	// the change (or, when Full, the whole state, as from Snapshot).
	KindChanged
	// KindTouched: only LastAccess moved (by more than MaxInactive/10 since
	// last announced); Version is unchanged.
	KindTouched
	// KindInvalidated: the session was ended on purpose; Version was bumped.
	KindInvalidated
	// KindExpired: the session expired; Version is unchanged.
	KindExpired
	// KindIDChanged: the session got a new id (ID); OldID is the former
	// one. The Delta holds the full state; Version was bumped.
	KindIDChanged
	kindEnd
)

var kindNames = [...]string{"none", "created", "changed", "touched", "invalidated", "expired", "idchanged"}

// String returns the kind's lowercase name, or "unknown".
func (k Kind) String() string {
	if k < kindEnd {
		return kindNames[k]
	}
	return "unknown"
}

// Delta is one change of one session, as emitted to subscribers and as
// shipped to peers. It encodes with msgpack under explicit field names;
// its decoder (DecodeMsgpack) instantiates nothing but the fields below,
// skips unknown fields and never preallocates from a declared length.
//
// The Set map and its slices may be shared with the session: treat them as
// read-only.
type Delta struct {
	ID          string            `msgpack:"id"`
	OldID       string            `msgpack:"oldId,omitempty"` // KindIDChanged only
	App         string            `msgpack:"app"`
	Kind        Kind              `msgpack:"kind"`
	Version     uint64            `msgpack:"v"`
	Full        bool              `msgpack:"full,omitempty"` // Set is the whole attribute map
	Set         map[string][]byte `msgpack:"set,omitempty"`
	Deleted     []string          `msgpack:"del,omitempty"`
	Created     time.Time         `msgpack:"created"`
	LastAccess  time.Time         `msgpack:"access"`
	MaxInactive time.Duration     `msgpack:"maxInactive"`
}

// MaxAppLength bounds Delta.App.
const MaxAppLength = 256

// Validate returns a *DeltaError (ErrInvalidDelta) naming the first bad
// field, or nil.
func (d *Delta) Validate() error {
	bad := func(field, reason string) error { return &DeltaError{Field: field, Reason: reason} }
	switch {
	case !ValidID(d.ID):
		return bad("ID", fmt.Sprintf("%q is not a session id", cut(d.ID)))
	case d.App == "" || len(d.App) > MaxAppLength:
		return bad("App", fmt.Sprintf("must be 1-%d bytes", MaxAppLength))
	case d.Kind == KindNone || d.Kind >= kindEnd:
		return bad("Kind", fmt.Sprintf("unknown kind %d", d.Kind))
	case d.Version == 0:
		return bad("Version", "zero")
	case d.MaxInactive <= 0:
		return bad("MaxInactive", "not positive")
	case d.Kind == KindIDChanged && !ValidID(d.OldID):
		return bad("OldID", fmt.Sprintf("%q is not a session id", cut(d.OldID)))
	case d.Kind == KindIDChanged && !d.Full:
		return bad("Full", "an idchanged delta must carry the full state")
	}
	for k := range d.Set {
		if err := checkKey(k); err != nil {
			return bad("Set", err.Error())
		}
	}
	for i, k := range d.Deleted {
		if k == "" {
			return bad(fmt.Sprintf("Deleted[%d]", i), "empty key")
		}
	}
	return nil
}

func cut(s string) string {
	if len(s) > 80 {
		return s[:80]
	}
	return s
}

// MarshalDelta encodes d with msgpack: a map under the field names of the
// struct tags, as msgpack.Marshal would write it, but written directly
// (replication encodes every change, and reflection was its largest cost).
func MarshalDelta(d Delta) ([]byte, error) {
	size := 96 + len(d.ID) + len(d.OldID) + len(d.App)
	for k, v := range d.Set {
		size += len(k) + len(v) + 10
	}
	for _, k := range d.Deleted {
		size += len(k) + 5
	}
	return appendDelta(make([]byte, 0, size), &d), nil
}

// appendDelta appends the msgpack encoding of d to b.
func appendDelta(b []byte, d *Delta) []byte {
	n := 7 // id, app, kind, v, created, access, maxInactive, and the optional ones below
	if d.OldID != "" {
		n++
	}
	if d.Full {
		n++
	}
	if len(d.Set) > 0 {
		n++
	}
	if len(d.Deleted) > 0 {
		n++
	}
	b = appendMapHeader(b, n)
	b = appendStr(appendStr(b, "id"), d.ID)
	if d.OldID != "" {
		b = appendStr(appendStr(b, "oldId"), d.OldID)
	}
	b = appendStr(appendStr(b, "app"), d.App)
	b = appendUint(appendStr(b, "kind"), uint64(d.Kind))
	b = appendUint(appendStr(b, "v"), d.Version)
	if d.Full {
		b = append(appendStr(b, "full"), 0xc3)
	}
	if len(d.Set) > 0 {
		b = appendMapHeader(appendStr(b, "set"), len(d.Set))
		for k, v := range d.Set {
			b = appendBin(appendStr(b, k), v)
		}
	}
	if len(d.Deleted) > 0 {
		b = appendArrayHeader(appendStr(b, "del"), len(d.Deleted))
		for _, k := range d.Deleted {
			b = appendStr(b, k)
		}
	}
	b = appendTime(appendStr(b, "created"), d.Created)
	b = appendTime(appendStr(b, "access"), d.LastAccess)
	return appendInt(appendStr(b, "maxInactive"), int64(d.MaxInactive))
}

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= 0xffff:
		return append(b, 0xde, byte(n>>8), byte(n))
	}
	return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= 0xffff:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= 0xff:
		b = append(b, 0xd9, byte(n))
	case n <= 0xffff:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= 0xff:
		b = append(b, 0xc4, byte(n))
	case n <= 0xffff:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, v...)
}

func appendUint(b []byte, x uint64) []byte {
	switch {
	case x < 128:
		return append(b, byte(x))
	case x <= 0xff:
		return append(b, 0xcc, byte(x))
	case x <= 0xffff:
		return append(b, 0xcd, byte(x>>8), byte(x))
	case x <= 0xffffffff:
		return append(b, 0xce, byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
	}
	return append(b, 0xcf, byte(x>>56), byte(x>>48), byte(x>>40), byte(x>>32), byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

func appendInt(b []byte, x int64) []byte {
	if x >= 0 {
		return appendUint(b, uint64(x))
	}
	u := uint64(x)
	return append(b, 0xd3, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// appendTime writes t as the msgpack timestamp extension (type -1, 96-bit form).
func appendTime(b []byte, t time.Time) []byte {
	ns, sec := uint32(t.Nanosecond()), uint64(t.Unix())
	return append(b, 0xc7, 12, 0xff, byte(ns>>24), byte(ns>>16), byte(ns>>8), byte(ns),
		byte(sec>>56), byte(sec>>48), byte(sec>>40), byte(sec>>32), byte(sec>>24), byte(sec>>16), byte(sec>>8), byte(sec))
}

// UnmarshalDelta decodes and validates what MarshalDelta produced. Garbage
// and trailing bytes are errors; it never panics.
func UnmarshalDelta(b []byte) (Delta, error) {
	d, n, err := DecodeDelta(b)
	if err != nil {
		return Delta{}, fmt.Errorf("session: decode delta: %w", err)
	}
	if n != len(b) {
		return Delta{}, fmt.Errorf("session: decode delta: %d trailing bytes", len(b)-n)
	}
	if err := d.Validate(); err != nil {
		return Delta{}, err
	}
	return d, nil
}

// DecodeMsgpack implements msgpack.CustomDecoder: it decodes the fields by
// name, growing maps and slices as entries arrive so that a lying length
// cannot force a large allocation. It does not validate (see Validate).
func (d *Delta) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("delta is nil")
	}
	*d = Delta{}
	var buf [16]byte // longer than every field name: names are read without allocating
	for range n {
		key, err := fieldName(dec, buf[:])
		if err != nil {
			return fmt.Errorf("delta field name: %w", err)
		}
		if err := d.decodeField(dec, key); err != nil {
			return fmt.Errorf("delta field %q: %w", key, err)
		}
	}
	return nil
}

// fieldName reads a map key (a msgpack string) into buf. A key longer than buf names no field: it
// is read past and returned cut, and its value is then skipped as an unknown field's.
func fieldName(dec *msgpack.Decoder, buf []byte) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err == nil && n < -1 {
		err = fmt.Errorf("length %d out of range", n) // a 32-bit int overflowed
	}
	if err != nil || n <= 0 {
		return nil, err // nil or empty: no field of that name
	}
	if n <= len(buf) {
		return buf[:n], dec.ReadFull(buf[:n])
	}
	for left := n; left > 0; left -= len(buf) {
		if err := dec.ReadFull(buf[:min(left, len(buf))]); err != nil {
			return nil, err
		}
	}
	return append(buf[:len(buf)-3:len(buf)-3], "..."...), nil
}

func (d *Delta) decodeField(dec *msgpack.Decoder, key []byte) error {
	var err error
	switch string(key) {
	case "id":
		d.ID, err = dec.DecodeString()
	case "oldId":
		d.OldID, err = dec.DecodeString()
	case "app":
		d.App, err = dec.DecodeString()
	case "kind":
		var k uint64
		if k, err = dec.DecodeUint64(); err == nil && k > 255 {
			err = fmt.Errorf("kind %d out of range", k)
		}
		d.Kind = Kind(k)
	case "v":
		d.Version, err = dec.DecodeUint64()
	case "full":
		d.Full, err = dec.DecodeBool()
	case "set":
		d.Set, err = decodeAttrs(dec)
	case "del":
		d.Deleted, err = decodeStrings(dec)
	case "created":
		d.Created, err = dec.DecodeTime()
	case "access":
		d.LastAccess, err = dec.DecodeTime()
	case "maxInactive":
		var x int64
		x, err = dec.DecodeInt64()
		d.MaxInactive = time.Duration(x)
	default:
		err = dec.Skip()
	}
	return err
}

func decodeAttrs(dec *msgpack.Decoder) (map[string][]byte, error) {
	n, err := dec.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string][]byte, min(n, 64))
	for range n {
		k, err := dec.DecodeString()
		if err != nil {
			return nil, err
		}
		v, err := decodeValue(dec)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// upfront is the most decodeValue allocates before the bytes arrive: a longer value's buffer grows
// as it is read, so a length that lies costs no more than the bytes that came.
const upfront = 64 << 10

// decodeValue reads an attribute value (msgpack bin or str; nil is empty) into a buffer of its own,
// allocated once for the common value of up to 64 KiB.
func decodeValue(dec *msgpack.Decoder) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	switch {
	case err != nil:
		return nil, err
	case n < -1:
		return nil, fmt.Errorf("length %d out of range", n) // a 32-bit int overflowed
	case n <= 0:
		return []byte{}, nil
	}
	v := make([]byte, 0, min(n, upfront))
	for len(v) < n {
		k := min(n-len(v), max(len(v), upfront))
		v = slices.Grow(v, k)
		if err := dec.ReadFull(v[len(v) : len(v)+k]); err != nil {
			return nil, err
		}
		v = v[:len(v)+k]
	}
	return v, nil
}

func decodeStrings(dec *msgpack.Decoder) ([]string, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	s := make([]string, 0, min(n, 64))
	for range n {
		k, err := dec.DecodeString()
		if err != nil {
			return nil, err
		}
		s = append(s, k)
	}
	return s, nil
}
