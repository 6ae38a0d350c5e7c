package config

import (
	"fmt"
	"reflect"
	"strings"
)

// maxErrors caps the problems one decode reports.
const maxErrors = 50

// decoder holds the state shared by the YAML and XML front ends: the env
// lookup, the problems found and the line of every key seen.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	errs   []*FieldError
	lines  map[string]int // field path -> line
}

func newDecoder(opts Options) *decoder {
	return &decoder{file: opts.Filename, lookup: opts.lookupEnv(), lines: map[string]int{}}
}

// fail records a problem; it reports false once there are too many.
func (d *decoder) fail(line int, path string, err error) bool {
	if len(d.errs) < maxErrors {
		d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Field: path, Err: err})
	}
	return len(d.errs) < maxErrors
}

func (d *decoder) failf(line int, path string, format string, args ...any) bool {
	return d.fail(line, path, fmt.Errorf(format, args...))
}

// scalar expands raw and stores it in v, recording path's line.
func (d *decoder) scalar(v reflect.Value, raw, path string, line int) bool {
	d.lines[path] = line
	s, err := expandEnv(raw, d.lookup)
	if err != nil {
		d.fail(line, path, err)
		return false
	}
	if err := setScalar(v, s); err != nil {
		d.fail(line, path, err)
		return false
	}
	return true
}

// err returns the joined problems, nil when there are none.
func (d *decoder) err() error { return joinFieldErrors(d.errs) }

// lineOf returns the line of path or of its nearest recorded parent.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

// findField returns the field of fields whose name (per keyOf) is name.
func findField(fields []field, name string, keyOf func(field) string) (field, bool) {
	for _, f := range fields {
		if k := keyOf(f); k != "" && k == name {
			return f, true
		}
	}
	return field{}, false
}

// names lists the names (per keyOf) of fields, for suggestions.
func names(fields []field, keyOf func(field) string) []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if k := keyOf(f); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func yamlKey(f field) string { return f.key }

func xmlAttrKey(f field) string {
	if f.shape == shapeScalar {
		return f.key
	}
	return ""
}

func xmlElemKey(f field) string {
	if f.shape == shapeScalar {
		return ""
	}
	return f.xmlName
}
