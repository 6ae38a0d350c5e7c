package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeYAML fills cfg from a YAML document. yaml.v3 parses the text into a
// node tree; the tree is then walked against the schema, so every problem
// carries its line and field path, and unknown or duplicate keys are caught.
func (d *decoder) decodeYAML(data []byte, cfg *Config) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.yamlSyntax(err)
		}
		return
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlSyntax(err)
		return
	default:
		d.failf(extra.Line, "", "%w: more than one YAML document", ErrSyntax)
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	d.yamlSection(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
}

// yamlSyntax records a yaml.v3 parse error, moving its "line N" to Line.
func (d *decoder) yamlSyntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, after, found := strings.Cut(rest, ": ")
		if n, convErr := strconv.Atoi(num); found && convErr == nil {
			line, msg = n, after
		}
	}
	d.failf(line, "", "%w: %s", ErrSyntax, msg)
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "an alias"
}

// yamlSection decodes the mapping n into the struct v.
func (d *decoder) yamlSection(n *yaml.Node, v reflect.Value, path string) bool {
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		what := path
		if what == "" {
			what = "the document"
		}
		return d.failf(n.Line, path, "%w: %s must be a mapping of keys, found %s", ErrSyntax, what, describe(n))
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			if !d.failf(k.Line, path, "%w: a key must be a scalar, found %s", ErrSyntax, describe(k)) {
				return false
			}
			continue
		}
		p := joinPath(path, k.Value)
		if k.ShortTag() == "!!merge" {
			if !d.failf(k.Line, p, "%w: merge keys (<<) are not supported", ErrSyntax) {
				return false
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			if !d.failf(k.Line, p, "%w (first at line %d)", ErrDuplicateKey, first) {
				return false
			}
			continue
		}
		seen[k.Value] = k.Line
		f, ok := findField(fields, k.Value, yamlKey)
		if !ok {
			if !d.failf(k.Line, p, "%w%s", ErrUnknownKey, suggest(k.Value, names(fields, yamlKey))) {
				return false
			}
			continue
		}
		d.lines[p] = k.Line
		if !d.yamlValue(val, v.Field(f.index), f.shape, p) {
			return false
		}
	}
	return true
}

// yamlValue decodes n into the field v of the given shape.
func (d *decoder) yamlValue(n *yaml.Node, v reflect.Value, shape fieldShape, path string) bool {
	n = resolve(n)
	switch shape {
	case shapeSection:
		return d.yamlSection(n, v, path)
	case shapeList:
		return d.yamlList(n, v, path)
	}
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.ScalarNode {
		return d.failf(n.Line, path, "%w: expected a single value, found %s", ErrSyntax, describe(n))
	}
	d.scalar(v, n.Value, path, n.Line)
	return len(d.errs) < maxErrors
}

// yamlList decodes the sequence n into the slice v.
func (d *decoder) yamlList(n *yaml.Node, v reflect.Value, path string) bool {
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		return d.failf(n.Line, path, "%w: expected a list, found %s", ErrSyntax, describe(n))
	}
	list := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			if !d.failf(item.Line, p, "%w: a list item must be a single value, found %s", ErrSyntax, describe(item)) {
				return false
			}
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if d.scalar(elem, item.Value, p, item.Line) {
			list = reflect.Append(list, elem)
		}
	}
	v.Set(list)
	return len(d.errs) < maxErrors
}
