package wire

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// keyPrefix marks an attribute key holding an encoded non-string key.
const keyPrefix = "~"

// valuesSep separates a gorilla session name from a key in an attribute key.
const valuesSep = "|"

// EncodeKey encodes k with a nil Registry.
func EncodeKey(k any) (string, error) { return (*Registry)(nil).EncodeKey(k) }

// DecodeKey decodes s with a nil Registry.
func DecodeKey(s string) (any, error) { return (*Registry)(nil).DecodeKey(s) }

// EncodeKey turns a map key of any encodable type into a text attribute key
// that survives JSON. A non-empty, valid UTF-8 string that does not start
// with "~" stays as it is (so other languages see plain keys); anything else
// becomes "~" followed by the base64url of its typed encoding.
func (r *Registry) EncodeKey(k any) (string, error) {
	if s, ok := k.(string); ok && s != "" && !strings.HasPrefix(s, keyPrefix) && utf8.ValidString(s) {
		return s, nil
	}
	if !comparable(k) {
		return "", &ValueError{Type: fmt.Sprintf("%T", k), Reason: "cannot be a map key"}
	}
	b, err := r.EncodeValue(k)
	if err != nil {
		return "", err
	}
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeKey reverses EncodeKey. The result is always usable as a key of a
// map[any]any.
func (r *Registry) DecodeKey(s string) (any, error) {
	if s == "" {
		return nil, &ValueError{Type: "key", Reason: "empty"}
	}
	rest, ok := strings.CutPrefix(s, keyPrefix)
	if !ok {
		return s, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, &ValueError{Type: "key", Reason: "encoded key is not base64url: " + err.Error()}
	}
	k, err := r.DecodeValue(b)
	if err != nil {
		return nil, err
	}
	if !comparable(k) {
		return nil, &ValueError{Type: fmt.Sprintf("%T", k), Reason: "cannot be a map key"}
	}
	return k, nil
}

// ValuesPrefix is the attribute-key prefix under which EncodeValues stores
// the values of the gorilla session called name: name + "|".
func ValuesPrefix(name string) string { return name + valuesSep }

func checkValuesName(name string) error {
	if strings.Contains(name, valuesSep) {
		return fmt.Errorf("wire: session name %q must not contain %q", name, valuesSep)
	}
	return nil
}

// EncodeValues is Registry.EncodeValues with a nil Registry.
func EncodeValues(name string, values map[any]any) (map[string][]byte, error) {
	return (*Registry)(nil).EncodeValues(name, values)
}

// DecodeValues is Registry.DecodeValues with a nil Registry.
func DecodeValues(name string, attrs map[string][]byte) (map[any]any, error) {
	return (*Registry)(nil).DecodeValues(name, attrs)
}

// EncodeValues encodes the Values of the gorilla/sessions session called
// name into session attributes: key k becomes ValuesPrefix(name) +
// EncodeKey(k) and its value EncodeValue(v). Several named sessions thus
// share one herd session without clobbering each other.
func (r *Registry) EncodeValues(name string, values map[any]any) (map[string][]byte, error) {
	if err := checkValuesName(name); err != nil {
		return nil, err
	}
	prefix := ValuesPrefix(name)
	attrs := make(map[string][]byte, len(values))
	for k, v := range values {
		ks, err := r.EncodeKey(k)
		if err != nil {
			return nil, fmt.Errorf("wire: session %q: key %v: %w", name, k, err)
		}
		b, err := r.EncodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("wire: session %q: value of key %v: %w", name, k, err)
		}
		attrs[prefix+ks] = b
	}
	return attrs, nil
}

// DecodeValues reverses EncodeValues: it decodes the attributes under
// ValuesPrefix(name) and ignores the others. An attribute that does not
// decode (say, its type is no longer registered) is left out and reported
// in the error, which names its key; the other values are still returned.
func (r *Registry) DecodeValues(name string, attrs map[string][]byte) (map[any]any, error) {
	if err := checkValuesName(name); err != nil {
		return map[any]any{}, err
	}
	prefix := ValuesPrefix(name)
	values := make(map[any]any)
	var first error
	for ak, b := range attrs {
		ks, ok := strings.CutPrefix(ak, prefix)
		if !ok {
			continue
		}
		k, err := r.DecodeKey(ks)
		if err == nil {
			var v any
			if v, err = r.DecodeValue(b); err == nil {
				values[k] = v
				continue
			}
		}
		if first == nil {
			first = fmt.Errorf("wire: attribute %q: %w", ak, err)
		}
	}
	return values, first
}
