package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// The Config struct is the schema: both decoders, Diff and the encoder's
// escaping walk it by reflection using its yaml and xml tags, so the two
// syntaxes cannot drift apart.

type fieldShape int

const (
	shapeScalar  fieldShape = iota // string, int, bool, or a TextUnmarshaler
	shapeSection                   // nested struct
	shapeList                      // slice of scalars
)

// field describes one struct field of the schema.
type field struct {
	index   int
	key     string // YAML key and XML attribute name
	xmlName string // XML element name (sections, list items)
	shape   fieldShape
	reload  bool
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

func shapeOf(t reflect.Type) fieldShape {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return shapeScalar
	}
	switch t.Kind() {
	case reflect.Struct:
		return shapeSection
	case reflect.Slice:
		return shapeList
	}
	return shapeScalar
}

// fieldsOf lists the schema fields of struct type t.
func fieldsOf(t reflect.Type) []field {
	out := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		xmlName, _, _ := strings.Cut(sf.Tag.Get("xml"), ",")
		out = append(out, field{
			index:   i,
			key:     key,
			xmlName: xmlName,
			shape:   shapeOf(sf.Type),
			reload:  sf.Tag.Get("reload") == "true",
		})
	}
	return out
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// setScalar parses s into the scalar v (addressable).
func setScalar(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if err := u.UnmarshalText([]byte(s)); err != nil {
			return invalidf("%v", err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
		if err != nil {
			return invalidf("%q is not an integer", s)
		}
		v.SetInt(n)
	case reflect.Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return invalidf("%q is not true or false", s)
		}
	default:
		return invalidf("unsupported field type %s", v.Type())
	}
	return nil
}

// suggest returns a "did you mean" hint for an unknown name among known ones.
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, bounded to short inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// walkLeaves calls fn for every non-section field of the struct values a and
// b (same type) with its dotted path. b may be invalid to walk a alone.
func walkLeaves(a, b reflect.Value, path string, fn func(path string, f field, a, b reflect.Value)) {
	for _, f := range fieldsOf(a.Type()) {
		fa := a.Field(f.index)
		var fb reflect.Value
		if b.IsValid() {
			fb = b.Field(f.index)
		}
		p := joinPath(path, f.key)
		if f.shape == shapeSection {
			walkLeaves(fa, fb, p, fn)
			continue
		}
		fn(p, f, fa, fb)
	}
}
