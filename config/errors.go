package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors, wrapped by FieldError; test with errors.Is.
var (
	// ErrUnsupportedFormat: the file extension or format name is not yaml, yml or xml.
	ErrUnsupportedFormat = errors.New("unsupported config format")
	// ErrUnknownKey: the file holds a key, attribute or element herd does not know.
	ErrUnknownKey = errors.New("unknown key")
	// ErrDuplicateKey: a key, attribute or section appears twice.
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrUnsetVariable: ${NAME} names an unset environment variable and has no default.
	ErrUnsetVariable = errors.New("environment variable is not set")
	// ErrSyntax: the file is not well-formed YAML or XML, or has the wrong shape.
	ErrSyntax = errors.New("syntax error")
	// ErrInvalid: a value is out of range, malformed or inconsistent (Validate).
	ErrInvalid = errors.New("invalid value")
	// ErrNotReloadable: a key changed that only takes effect after a restart.
	ErrNotReloadable = errors.New("cannot change at runtime (restart required)")
)

// FieldError is one problem with one config entry. Decode, Validate, Load and
// CheckReload return these, alone or joined with errors.Join; use errors.As on
// each to reach the field path and position.
type FieldError struct {
	// File is the source file, "" when unknown.
	File string
	// Line is the 1-based line in File, 0 when unknown.
	Line int
	// Field is the dotted key path in YAML spelling, such as
	// "cluster.replication.mode" or "cluster.membership.seeds[1]"; "" for
	// problems not tied to a key.
	Field string
	// Err describes the problem; it wraps one of the sentinel errors.
	Err error
}

// Error formats "file:line: field: problem", leaving out unknown parts.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	if e.Err == nil {
		b.WriteString("invalid")
	} else {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *FieldError) Unwrap() error { return e.Err }

// problem is a message that matches a sentinel with errors.Is without
// repeating the sentinel's text.
type problem struct {
	sentinel error
	msg      string
}

func (p *problem) Error() string        { return p.msg }
func (p *problem) Is(target error) bool { return target == p.sentinel }

// invalidf formats a problem matching ErrInvalid.
func invalidf(format string, args ...any) error {
	return &problem{sentinel: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// joinFieldErrors joins errs with errors.Join, nil when there are none.
func joinFieldErrors(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}
