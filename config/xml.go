package config

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// xmlReader walks XML tokens against the schema, turning input offsets into
// line numbers.
type xmlReader struct {
	*decoder
	dec  *xml.Decoder
	data []byte
	// line counting: line is the line at byte offset pos.
	pos  int64
	line int
}

// lineAt returns the 1-based line of byte offset off.
func (r *xmlReader) lineAt(off int64) int {
	if off < r.pos {
		r.pos, r.line = 0, 1
	}
	off = min(off, int64(len(r.data)))
	r.line += bytes.Count(r.data[r.pos:off], []byte{'\n'})
	r.pos = off
	return r.line
}

// attrLine finds the line of attribute name inside the start tag at [start,end).
func (r *xmlReader) attrLine(name string, start, end int64) int {
	base := r.lineAt(start)
	end = min(end, int64(len(r.data)))
	if start >= end {
		return base
	}
	tag := r.data[start:end]
	for i := 0; ; {
		j := bytes.Index(tag[i:], []byte(name))
		if j < 0 {
			return base
		}
		at := i + j
		rest := bytes.TrimLeft(tag[at+len(name):], " \t\r\n")
		if at > 0 && isXMLSpace(tag[at-1]) && len(rest) > 0 && rest[0] == '=' {
			return base + bytes.Count(tag[:at], []byte{'\n'})
		}
		i = at + 1
	}
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the next token and the offset it starts at; a syntax error is
// recorded and returned.
func (r *xmlReader) next() (xml.Token, int64, error) {
	off := r.dec.InputOffset()
	t, err := r.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, off, err
		}
		var se *xml.SyntaxError
		line := r.lineAt(r.dec.InputOffset())
		msg := err.Error()
		if errors.As(err, &se) {
			line, msg = se.Line, se.Msg
		}
		r.failf(line, "", "%w: %s", ErrSyntax, msg)
		return nil, off, err
	}
	return t, off, nil
}

// decodeXML fills cfg from a <Server> document.
func (d *decoder) decodeXML(data []byte, cfg *Config) {
	r := &xmlReader{decoder: d, dec: xml.NewDecoder(bytes.NewReader(data)), data: data, line: 1}
	for {
		t, off, err := r.next()
		if errors.Is(err, io.EOF) {
			d.failf(r.lineAt(off), "", "%w: no <Server> element", ErrSyntax)
			return
		}
		if err != nil {
			return
		}
		switch t := t.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				d.failf(r.lineAt(off), "", "%w: text outside <Server>", ErrSyntax)
				return
			}
		case xml.StartElement:
			if t.Name.Local != "Server" || t.Name.Space != "" {
				ns := ""
				if t.Name.Space != "" {
					ns = fmt.Sprintf(" in namespace %q (XML namespaces are not supported)", t.Name.Space)
				}
				d.failf(r.lineAt(off), "", "%w: the root element must be <Server>, found <%s>%s", ErrSyntax, t.Name.Local, ns)
				return
			}
			if r.section(t, off, reflect.ValueOf(cfg).Elem(), "") {
				r.trailer()
			}
			return
		}
	}
}

// trailer rejects anything but comments and space after </Server>.
func (r *xmlReader) trailer() {
	for {
		t, off, err := r.next()
		if err != nil {
			return
		}
		switch t := t.(type) {
		case xml.StartElement:
			r.failf(r.lineAt(off), "", "%w: element <%s> after </Server>", ErrSyntax, t.Name.Local)
			return
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				r.failf(r.lineAt(off), "", "%w: text after </Server>", ErrSyntax)
				return
			}
		}
	}
}

func attrName(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// section decodes the element start (at offset off) into the struct v: its
// attributes, then its child elements up to the matching end tag. It reports
// false when decoding must stop.
func (r *xmlReader) section(start xml.StartElement, off int64, v reflect.Value, path string) bool {
	fields := fieldsOf(v.Type())
	end := r.dec.InputOffset()
	line := r.lineAt(off)
	seen := map[string]bool{}
	for _, a := range start.Attr {
		name := attrName(a.Name)
		p := joinPath(path, name)
		aline := r.attrLine(name, off, end)
		f, ok := findField(fields, a.Name.Local, xmlAttrKey)
		switch {
		case seen[name]:
			ok = r.failf(aline, p, "%w: attribute %s repeated", ErrDuplicateKey, name)
		case !ok || a.Name.Space != "":
			ok = r.failf(aline, p, "%w: attribute %s on <%s>%s", ErrUnknownKey, name, start.Name.Local,
				suggest(name, names(fields, xmlAttrKey)))
		default:
			r.scalar(v.Field(f.index), a.Value, p, aline)
			ok = len(r.errs) < maxErrors
		}
		if !ok {
			return false
		}
		seen[name] = true
	}
	return r.children(start, line, v, fields, path)
}

// children decodes the child elements of start into v.
func (r *xmlReader) children(start xml.StartElement, line int, v reflect.Value, fields []field, path string) bool {
	sections := map[string]int{}
	items := map[string]int{}
	for {
		t, off, err := r.next()
		if errors.Is(err, io.EOF) {
			return r.failf(line, path, "%w: <%s> is not closed", ErrSyntax, start.Name.Local)
		}
		if err != nil {
			return false
		}
		switch t := t.(type) {
		case xml.EndElement:
			return true
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 && !r.failf(r.lineAt(off), path, "%w: unexpected text in <%s>", ErrSyntax, start.Name.Local) {
				return false
			}
		case xml.StartElement:
			if !r.child(t, start, off, v, fields, path, sections, items) {
				return false
			}
		}
	}
}

// child decodes one child element: a nested section or a list item.
func (r *xmlReader) child(t, parent xml.StartElement, off int64, v reflect.Value, fields []field, path string, sections, items map[string]int) bool {
	line := r.lineAt(off)
	f, ok := findField(fields, t.Name.Local, xmlElemKey)
	if !ok || t.Name.Space != "" {
		ok := r.failf(line, joinPath(path, t.Name.Local), "%w: element <%s> in <%s>%s", ErrUnknownKey,
			t.Name.Local, parent.Name.Local, suggest(t.Name.Local, names(fields, xmlElemKey)))
		return ok && r.skip()
	}
	p := joinPath(path, f.key)
	if f.shape == shapeSection {
		if first, dup := sections[f.key]; dup {
			ok := r.failf(line, p, "%w: <%s> repeated (first at line %d)", ErrDuplicateKey, t.Name.Local, first)
			return ok && r.skip()
		}
		sections[f.key] = line
		r.lines[p] = line
		return r.section(t, off, v.Field(f.index), p)
	}
	i := items[f.key]
	items[f.key] = i + 1
	ip := fmt.Sprintf("%s[%d]", p, i)
	text, ok := r.text(t, line, ip)
	if !ok {
		return false
	}
	list := v.Field(f.index)
	elem := reflect.New(list.Type().Elem()).Elem()
	if r.scalar(elem, text, ip, line) {
		list.Set(reflect.Append(list, elem))
	}
	return len(r.errs) < maxErrors
}

// text reads the character content of a list item element such as <Seed>.
func (r *xmlReader) text(start xml.StartElement, line int, path string) (string, bool) {
	for _, a := range start.Attr {
		if !r.failf(line, path, "%w: attribute %s on <%s> (it takes only text)", ErrUnknownKey, attrName(a.Name), start.Name.Local) {
			return "", false
		}
	}
	var b strings.Builder
	for {
		t, off, err := r.next()
		if errors.Is(err, io.EOF) {
			return "", r.failf(line, path, "%w: <%s> is not closed", ErrSyntax, start.Name.Local)
		}
		if err != nil {
			return "", false
		}
		switch t := t.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return strings.TrimSpace(b.String()), true
		case xml.StartElement:
			if !r.failf(r.lineAt(off), path, "%w: element <%s> inside <%s> (it takes only text)", ErrUnknownKey, t.Name.Local, start.Name.Local) || !r.skip() {
				return "", false
			}
		}
	}
}

// skip consumes the rest of the element just started.
func (r *xmlReader) skip() bool {
	if err := r.dec.Skip(); err != nil {
		var se *xml.SyntaxError
		line, msg := r.lineAt(r.dec.InputOffset()), err.Error()
		if errors.As(err, &se) {
			line, msg = se.Line, se.Msg
		}
		r.failf(line, "", "%w: %s", ErrSyntax, msg)
		return false
	}
	return true
}
