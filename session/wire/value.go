package wire

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxDepth bounds the nesting of containers ([]any, map[string]any,
// map[any]any) in an encoded value, on both encode and decode.
const MaxDepth = 32

// Type tags of the built-in types. A value is encoded as the msgpack array
// [tag, payload]; containers hold such envelopes again.
const (
	tagNil       = "nil"
	tagBool      = "bool"
	tagInt       = "int"
	tagInt8      = "int8"
	tagInt16     = "int16"
	tagInt32     = "int32"
	tagInt64     = "int64"
	tagUint      = "uint"
	tagUint8     = "uint8"
	tagUint16    = "uint16"
	tagUint32    = "uint32"
	tagUint64    = "uint64"
	tagFloat32   = "float32"
	tagFloat64   = "float64"
	tagString    = "string"
	tagBytes     = "[]byte"
	tagTime      = "time.Time"
	tagDuration  = "time.Duration"
	tagStrings   = "[]string"
	tagInts      = "[]int"
	tagInt64s    = "[]int64"
	tagFloat64s  = "[]float64"
	tagAnys      = "[]any"
	tagMapString = "map[string]string"
	tagMapAny    = "map[string]any"
	tagMapAnyAny = "map[any]any"
	tagPtrPrefix = "*"
	tagRegPrefix = "type:"
)

// Registry maps explicit names to the non-built-in types (usually structs)
// that the typed value codec may encode and decode. Decoding never
// instantiates a type that is not registered: an unknown tag is an error.
// A Registry is safe for concurrent use; a nil *Registry knows only the
// built-in types. There is no global registry: give each Store its own.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]reflect.Type
	byType map[reflect.Type]string
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]reflect.Type{}, byType: map[reflect.Type]string{}}
}

// Register makes the type of sample (a value, not a pointer; usually a
// struct) encodable under name, both as a value and as a pointer to it.
// The type's exported fields are encoded with msgpack (honouring `msgpack`
// struct tags); fields of interface type come back as generic maps and
// slices. The name travels with every value, so keep it stable across app
// versions. Registering the same name and type twice is a no-op; anything
// else that reuses a name or a type is an error.
func (r *Registry) Register(name string, sample any) error {
	if r == nil {
		return fmt.Errorf("wire: register %q: nil Registry", name)
	}
	if name == "" {
		return fmt.Errorf("wire: register %T: empty name", sample)
	}
	t := reflect.TypeOf(sample)
	if t == nil {
		return fmt.Errorf("wire: register %q: nil sample", name)
	}
	if t.Kind() == reflect.Pointer {
		return fmt.Errorf("wire: register %q: sample %s is a pointer; pass a value", name, t)
	}
	if _, builtin := builtinTag(t); builtin {
		return fmt.Errorf("wire: register %q: %s is built in", name, t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName, r.byType = map[string]reflect.Type{}, map[reflect.Type]string{}
	}
	if old, ok := r.byName[name]; ok && old != t {
		return fmt.Errorf("wire: register %q: name already used by %s", name, old)
	}
	if old, ok := r.byType[t]; ok && old != name {
		return fmt.Errorf("wire: register %q: %s already registered as %q", name, t, old)
	}
	r.byName[name], r.byType[t] = t, name
	return nil
}

func (r *Registry) nameOf(t reflect.Type) (string, bool) {
	if r == nil {
		return "", false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.byType[t]
	return n, ok
}

func (r *Registry) typeOf(name string) (reflect.Type, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.byName[name]
	return t, ok
}

// ValueError reports a value the codec cannot encode or decode.
type ValueError struct {
	Type   string // the Go type or the tag at fault
	Reason string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("wire: value of type %s: %s", e.Type, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *ValueError) Unwrap() error { return ErrMalformed }

// EncodeValue encodes v with a nil Registry (built-in types only).
func EncodeValue(v any) ([]byte, error) { return (*Registry)(nil).EncodeValue(v) }

// DecodeValue decodes b with a nil Registry (built-in types only).
func DecodeValue(b []byte) (any, error) { return (*Registry)(nil).DecodeValue(b) }

// EncodeValue encodes v so that DecodeValue returns a value of the same Go
// type: nil, bool, every int/uint/float kind, string, []byte, time.Time,
// time.Duration, []string, []int, []int64, []float64, []any,
// map[string]string, map[string]any, map[any]any (elements of the last
// three are encoded recursively), and registered types T and *T. Any other
// type is a *ValueError naming it.
func (r *Registry) EncodeValue(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := r.encode(enc, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeValue decodes what EncodeValue produced. Garbage, unknown tags,
// unregistered type names and trailing bytes are *ValueErrors; it never
// panics and never allocates much more than len(b).
func (r *Registry) DecodeValue(b []byte) (any, error) {
	rd := newReader(b)
	v, err := r.decode(rd, 0)
	if err != nil {
		return nil, err
	}
	if rd.br.Len() != 0 {
		return nil, &ValueError{Type: "value", Reason: fmt.Sprintf("%d trailing bytes", rd.br.Len())}
	}
	return v, nil
}

func builtinTag(t reflect.Type) (string, bool) {
	switch t {
	case reflect.TypeFor[bool]():
		return tagBool, true
	case reflect.TypeFor[int]():
		return tagInt, true
	case reflect.TypeFor[int8]():
		return tagInt8, true
	case reflect.TypeFor[int16]():
		return tagInt16, true
	case reflect.TypeFor[int32]():
		return tagInt32, true
	case reflect.TypeFor[int64]():
		return tagInt64, true
	case reflect.TypeFor[uint]():
		return tagUint, true
	case reflect.TypeFor[uint8]():
		return tagUint8, true
	case reflect.TypeFor[uint16]():
		return tagUint16, true
	case reflect.TypeFor[uint32]():
		return tagUint32, true
	case reflect.TypeFor[uint64]():
		return tagUint64, true
	case reflect.TypeFor[float32]():
		return tagFloat32, true
	case reflect.TypeFor[float64]():
		return tagFloat64, true
	case reflect.TypeFor[string]():
		return tagString, true
	case reflect.TypeFor[[]byte]():
		return tagBytes, true
	case reflect.TypeFor[time.Time]():
		return tagTime, true
	case reflect.TypeFor[time.Duration]():
		return tagDuration, true
	case reflect.TypeFor[[]string]():
		return tagStrings, true
	case reflect.TypeFor[[]int]():
		return tagInts, true
	case reflect.TypeFor[[]int64]():
		return tagInt64s, true
	case reflect.TypeFor[[]float64]():
		return tagFloat64s, true
	case reflect.TypeFor[[]any]():
		return tagAnys, true
	case reflect.TypeFor[map[string]string]():
		return tagMapString, true
	case reflect.TypeFor[map[string]any]():
		return tagMapAny, true
	case reflect.TypeFor[map[any]any]():
		return tagMapAnyAny, true
	}
	return "", false
}

func (r *Registry) encode(enc *msgpack.Encoder, v any, depth int) error {
	if depth > MaxDepth {
		return &ValueError{Type: fmt.Sprintf("%T", v), Reason: fmt.Sprintf("nested deeper than %d", MaxDepth)}
	}
	if v == nil {
		return encodeEnvelope(enc, tagNil, func() error { return enc.EncodeNil() })
	}
	t := reflect.TypeOf(v)
	if tag, ok := builtinTag(t); ok {
		return encodeEnvelope(enc, tag, func() error { return r.encodeBuiltin(enc, v, depth) })
	}
	if name, ok := r.nameOf(t); ok {
		return encodeEnvelope(enc, tagRegPrefix+name, func() error { return encodeStruct(enc, v) })
	}
	if t.Kind() == reflect.Pointer {
		if name, ok := r.nameOf(t.Elem()); ok {
			rv := reflect.ValueOf(v)
			if rv.IsNil() {
				return encodeEnvelope(enc, tagPtrPrefix+tagRegPrefix+name, func() error { return enc.EncodeNil() })
			}
			return encodeEnvelope(enc, tagPtrPrefix+tagRegPrefix+name, func() error {
				return encodeStruct(enc, rv.Elem().Interface())
			})
		}
	}
	return &ValueError{Type: t.String(), Reason: "not supported; register it with Registry.Register"}
}

func encodeEnvelope(enc *msgpack.Encoder, tag string, payload func() error) error {
	if err := enc.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := enc.EncodeString(tag); err != nil {
		return err
	}
	return payload()
}

func encodeStruct(enc *msgpack.Encoder, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return &ValueError{Type: fmt.Sprintf("%T", v), Reason: err.Error()}
	}
	return enc.EncodeBytes(b)
}

func (r *Registry) encodeBuiltin(enc *msgpack.Encoder, v any, depth int) error {
	switch x := v.(type) {
	case bool:
		return enc.EncodeBool(x)
	case int:
		return enc.EncodeInt(int64(x))
	case int8:
		return enc.EncodeInt(int64(x))
	case int16:
		return enc.EncodeInt(int64(x))
	case int32:
		return enc.EncodeInt(int64(x))
	case int64:
		return enc.EncodeInt(x)
	case uint:
		return enc.EncodeUint(uint64(x))
	case uint8:
		return enc.EncodeUint(uint64(x))
	case uint16:
		return enc.EncodeUint(uint64(x))
	case uint32:
		return enc.EncodeUint(uint64(x))
	case uint64:
		return enc.EncodeUint(x)
	case float32:
		return enc.EncodeFloat32(x)
	case float64:
		return enc.EncodeFloat64(x)
	case string:
		return enc.EncodeString(x)
	case []byte:
		return enc.EncodeBytes(x)
	case time.Duration:
		return enc.EncodeInt(int64(x))
	case time.Time:
		b, err := x.MarshalBinary()
		if err != nil {
			return &ValueError{Type: tagTime, Reason: err.Error()}
		}
		return enc.EncodeBytes(b)
	}
	return r.encodeContainer(enc, v, depth)
}

func (r *Registry) encodeContainer(enc *msgpack.Encoder, v any, depth int) error {
	switch x := v.(type) {
	case []string:
		return encodeSlice(enc, x, enc.EncodeString)
	case []int:
		return encodeSlice(enc, x, func(n int) error { return enc.EncodeInt(int64(n)) })
	case []int64:
		return encodeSlice(enc, x, enc.EncodeInt)
	case []float64:
		return encodeSlice(enc, x, enc.EncodeFloat64)
	case []any:
		return encodeSlice(enc, x, func(e any) error { return r.encode(enc, e, depth+1) })
	case map[string]string:
		return encodeMap(enc, x, enc.EncodeString, enc.EncodeString)
	case map[string]any:
		return encodeMap(enc, x, enc.EncodeString, func(e any) error { return r.encode(enc, e, depth+1) })
	case map[any]any:
		// Keys are sorted by their encoding so that equal maps encode equally.
		type kv struct{ k, v []byte }
		pairs := make([]kv, 0, len(x))
		for k, e := range x {
			kb, err := r.encodeNested(k, depth+1)
			if err != nil {
				return err
			}
			vb, err := r.encodeNested(e, depth+1)
			if err != nil {
				return err
			}
			pairs = append(pairs, kv{kb, vb})
		}
		sort.Slice(pairs, func(i, j int) bool { return bytes.Compare(pairs[i].k, pairs[j].k) < 0 })
		if err := enc.EncodeMapLen(len(pairs)); err != nil {
			return err
		}
		for _, p := range pairs {
			if _, err := enc.Writer().Write(p.k); err != nil {
				return err
			}
			if _, err := enc.Writer().Write(p.v); err != nil {
				return err
			}
		}
		return nil
	}
	return &ValueError{Type: fmt.Sprintf("%T", v), Reason: "not supported"}
}

func (r *Registry) encodeNested(v any, depth int) ([]byte, error) {
	var buf bytes.Buffer
	if err := r.encode(msgpack.NewEncoder(&buf), v, depth); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeSlice[T any](enc *msgpack.Encoder, s []T, each func(T) error) error {
	if s == nil {
		return enc.EncodeNil()
	}
	if err := enc.EncodeArrayLen(len(s)); err != nil {
		return err
	}
	for _, e := range s {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

func encodeMap[V any](enc *msgpack.Encoder, m map[string]V, key func(string) error, val func(V) error) error {
	if m == nil {
		return enc.EncodeNil()
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := enc.EncodeMapLen(len(keys)); err != nil {
		return err
	}
	for _, k := range keys {
		if err := key(k); err != nil {
			return err
		}
		if err := val(m[k]); err != nil {
			return err
		}
	}
	return nil
}
