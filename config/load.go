package config

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize caps a config file; larger input is refused before parsing.
const MaxFileSize = 1 << 20

// Syntax names accepted by Parse, Decode and Encode.
const (
	FormatYAML = "yaml"
	FormatXML  = "xml"
)

// Options tunes Decode and ParseWith.
type Options struct {
	// Filename names the input in error messages ("" for none).
	Filename string
	// LookupEnv resolves ${NAME}; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// DefaultName is node.name when the input sets none; "" means
	// DefaultNodeName. Load passes a name derived from the host name.
	DefaultName string
}

func (o Options) lookupEnv() func(string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv
	}
	return os.LookupEnv
}

// FormatOf returns the syntax of a config file from its extension: FormatYAML
// for .yaml and .yml, FormatXML for .xml; anything else is an error wrapping
// ErrUnsupportedFormat.
func FormatOf(path string) (string, error) {
	return normalizeFormat(filepath.Ext(path), path)
}

// normalizeFormat maps "yaml", ".yml", "XML"... to FormatYAML or FormatXML.
func normalizeFormat(format, file string) (string, error) {
	switch strings.ToLower(strings.TrimPrefix(format, ".")) {
	case "yaml", "yml":
		return FormatYAML, nil
	case "xml":
		return FormatXML, nil
	}
	return "", &FieldError{File: file, Err: fmt.Errorf("%w %q (want .yaml, .yml or .xml)", ErrUnsupportedFormat, format)}
}

// Decode parses data in format ("yaml", "yml" or "xml") into a Config holding
// exactly what the input says, with ${ENV} references expanded in the values.
// It applies no defaults and does not validate. Errors name the file, line and
// field; several are joined with errors.Join.
func Decode(data []byte, format string, opts Options) (*Config, error) {
	c, _, err := decode(data, format, opts)
	return c, err
}

func decode(data []byte, format string, opts Options) (*Config, map[string]int, error) {
	f, err := normalizeFormat(format, opts.Filename)
	if err != nil {
		return nil, nil, err
	}
	if len(data) > MaxFileSize {
		return nil, nil, &FieldError{File: opts.Filename, Err: fmt.Errorf("%w: larger than %s", ErrSyntax, Size(MaxFileSize))}
	}
	d := newDecoder(opts)
	c := new(Config)
	if f == FormatYAML {
		d.decodeYAML(data, c)
	} else {
		d.decodeXML(data, c)
	}
	if err := d.err(); err != nil {
		return nil, nil, err
	}
	return c, d.lines, nil
}

// Parse is ParseWith with zero Options: the process environment for ${ENV}.
func Parse(data []byte, format string) (*Config, error) {
	return ParseWith(data, format, Options{})
}

// ParseWith decodes data, applies defaults and validates: the pure core of
// Load. Validation errors carry the line of the key at fault when the input
// has it.
func ParseWith(data []byte, format string, opts Options) (*Config, error) {
	c, lines, err := decode(data, format, opts)
	if err != nil {
		return nil, err
	}
	if c.Node.Name == "" {
		c.Node.Name = opts.DefaultName
	}
	c.ApplyDefaults()
	problems := c.problems()
	for _, p := range problems {
		p.File, p.Line = opts.Filename, lineOf(lines, p.Field)
	}
	if err := joinFieldErrors(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads the config file at path, picks the syntax from its extension,
// decodes it, expands ${ENV} from the process environment, applies defaults
// (node.name from the host name when unset) and validates it.
func Load(path string) (*Config, error) {
	format, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return ParseWith(data, format, Options{Filename: path, DefaultName: routeFromHostname(host)})
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return data, nil
}

// routeFromHostname turns a host name into a valid node name: its first
// label, lower-cased, other characters replaced by '-'. "" when nothing is
// left, so the pure default applies.
func routeFromHostname(host string) string {
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	b := []byte(label)
	for i, c := range b {
		if !isAlnum(c) && c != '-' && c != '_' {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "-_")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-_")
	}
	if !validRoute(s) {
		return ""
	}
	return s
}

// Encode writes c in format ("yaml" or "xml") as a config file that decodes
// back to c: every key is written, and "${" in values is escaped as "$${".
// Secrets are written as they are; encode c.Redacted() for display.
func Encode(c Config, format string) ([]byte, error) {
	f, err := normalizeFormat(format, "")
	if err != nil {
		return nil, err
	}
	c = c.Clone()
	escapeStrings(reflect.ValueOf(&c).Elem())
	var buf bytes.Buffer
	if f == FormatYAML {
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(c); err != nil {
			return nil, fmt.Errorf("config: encode yaml: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("config: encode yaml: %w", err)
		}
		return buf.Bytes(), nil
	}
	server := struct {
		XMLName xml.Name `xml:"Server"`
		Config
	}{Config: c}
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(server); err != nil {
		return nil, fmt.Errorf("config: encode xml: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// escapeStrings escapes "${" in every string and string list of the struct v.
func escapeStrings(v reflect.Value) {
	walkLeaves(v, reflect.Value{}, "", func(_ string, _ field, a, _ reflect.Value) {
		switch {
		case a.Kind() == reflect.String:
			a.SetString(escapeEnv(a.String()))
		case a.Kind() == reflect.Slice && a.Type().Elem().Kind() == reflect.String:
			for i := range a.Len() {
				a.Index(i).SetString(escapeEnv(a.Index(i).String()))
			}
		}
	})
}

// FieldErrors splits an error returned by this package (possibly several
// joined) into its FieldErrors, in order; nil for nil.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
