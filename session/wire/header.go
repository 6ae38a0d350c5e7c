package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Header names of the process-app protocol.
const (
	// RequestHeader carries the session from the node to the app.
	RequestHeader = "Herd-Session"
	// UpdateHeader carries the app's changes from the app back to the node.
	UpdateHeader = "Herd-Session-Update"
	// HeaderPrefix is the prefix shared by every header of the protocol. The
	// node removes every request header starting with it (whatever the case)
	// before it adds its own, so a client cannot forge a session.
	HeaderPrefix = "Herd-Session"
)

// MaxHeaderSize is the default limit, in bytes, of an encoded header value
// (48 KiB). Since the value is base64 of JSON whose attribute values are
// base64 again, it holds roughly 34 KiB of raw attribute bytes.
const MaxHeaderSize = 48 << 10

// maxIDLen bounds the session id carried by the request header.
const maxIDLen = 128

// Sentinel errors callers may branch on with errors.Is.
var (
	// ErrTooLarge reports an encoded header or value over its limit; the
	// concrete error is a *TooLargeError.
	ErrTooLarge = errors.New("too large")
	// ErrMalformed reports input that is not a valid header or value; the
	// concrete error names the header or field at fault.
	ErrMalformed = errors.New("malformed")
)

// TooLargeError reports an encoding or an input over its size limit.
type TooLargeError struct {
	What  string // what was too large, e.g. "Herd-Session header"
	Size  int    // its size in bytes
	Limit int    // the limit in bytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("wire: %s is %d bytes, limit %d", e.What, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// FieldError reports a malformed header, naming the header and the field.
type FieldError struct {
	Header string // RequestHeader or UpdateHeader
	Field  string // JSON field, e.g. "attrs" or "delete[2]"; "" for the whole value
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("wire: %s header: %s", e.Header, e.Reason)
	}
	return fmt.Sprintf("wire: %s header: field %q: %s", e.Header, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *FieldError) Unwrap() error { return ErrMalformed }

// SessionView is the session as the node passes it to a process app.
type SessionView struct {
	ID          string            // session id (without the route suffix)
	New         bool              // created for this request; the app has not seen it before
	Created     time.Time         // creation time (millisecond precision on the wire)
	LastAccess  time.Time         // last access (millisecond precision on the wire)
	MaxInactive time.Duration     // idle time after which the session expires (whole seconds on the wire)
	Attrs       map[string][]byte // attributes; values are opaque bytes
}

// Update is a process app's change to its session, applied by the node in
// this order: Invalidate, then Delete and Set (creating a fresh session if
// Set is not empty and there is none), then Renew.
type Update struct {
	Set        map[string][]byte // attributes to set
	Delete     []string          // attributes to remove
	Invalidate bool              // end the session (a later Set starts a new one)
	Renew      bool              // give the session a new id (fixation defence, e.g. at login)
}

// IsZero reports whether u changes nothing.
func (u Update) IsZero() bool {
	return len(u.Set) == 0 && len(u.Delete) == 0 && !u.Invalidate && !u.Renew
}

type requestJSON struct {
	ID          string            `json:"id"`
	New         bool              `json:"new,omitempty"`
	Created     int64             `json:"created"`
	LastAccess  int64             `json:"lastAccess"`
	MaxInactive int64             `json:"maxInactive"`
	Attrs       map[string][]byte `json:"attrs"`
}

type updateJSON struct {
	Set        map[string][]byte `json:"set,omitempty"`
	Delete     []string          `json:"delete,omitempty"`
	Invalidate bool              `json:"invalidate,omitempty"`
	Renew      bool              `json:"renew,omitempty"`
}

// Codec encodes and decodes the protocol's headers with a size limit. The
// zero Codec uses MaxHeaderSize.
type Codec struct {
	// MaxSize bounds an encoded header value in bytes; <= 0 means MaxHeaderSize.
	MaxSize int
}

func (c Codec) limit() int {
	if c.MaxSize <= 0 {
		return MaxHeaderSize
	}
	return c.MaxSize
}

// EncodeRequest encodes v with the default Codec.
func EncodeRequest(v SessionView) (string, error) { return Codec{}.EncodeRequest(v) }

// DecodeRequest decodes a RequestHeader value with the default Codec.
func DecodeRequest(s string) (SessionView, error) { return Codec{}.DecodeRequest(s) }

// EncodeUpdate encodes u with the default Codec.
func EncodeUpdate(u Update) (string, error) { return Codec{}.EncodeUpdate(u) }

// DecodeUpdate decodes an UpdateHeader value with the default Codec.
func DecodeUpdate(s string) (Update, error) { return Codec{}.DecodeUpdate(s) }

// EncodeRequest encodes v as a RequestHeader value. It fails with a
// *FieldError when v is invalid and a *TooLargeError when the value would
// exceed the limit.
func (c Codec) EncodeRequest(v SessionView) (string, error) {
	j := requestJSON{
		ID:          v.ID,
		New:         v.New,
		Created:     unixMilli(v.Created),
		LastAccess:  unixMilli(v.LastAccess),
		MaxInactive: int64(v.MaxInactive / time.Second),
		Attrs:       v.Attrs,
	}
	if j.Attrs == nil {
		j.Attrs = map[string][]byte{}
	}
	if err := j.validate(); err != nil {
		return "", err
	}
	return c.encode(RequestHeader, j)
}

// DecodeRequest decodes a RequestHeader value. It fails with a *FieldError
// naming the problem for anything but a valid value.
func (c Codec) DecodeRequest(s string) (SessionView, error) {
	var j requestJSON
	if err := c.decode(RequestHeader, s, &j); err != nil {
		return SessionView{}, err
	}
	if err := j.validate(); err != nil {
		return SessionView{}, err
	}
	v := SessionView{
		ID:          j.ID,
		New:         j.New,
		Created:     time.UnixMilli(j.Created),
		LastAccess:  time.UnixMilli(j.LastAccess),
		MaxInactive: time.Duration(j.MaxInactive) * time.Second,
		Attrs:       j.Attrs,
	}
	if v.Attrs == nil {
		v.Attrs = map[string][]byte{}
	}
	return v, nil
}

// EncodeUpdate encodes u as an UpdateHeader value. It fails with a
// *FieldError when u is invalid (an empty key, or a key both set and
// deleted) and a *TooLargeError when the value would exceed the limit.
func (c Codec) EncodeUpdate(u Update) (string, error) {
	j := updateJSON(u)
	if err := j.validate(); err != nil {
		return "", err
	}
	return c.encode(UpdateHeader, j)
}

// DecodeUpdate decodes an UpdateHeader value. It fails with a *FieldError
// naming the problem for anything but a valid value.
func (c Codec) DecodeUpdate(s string) (Update, error) {
	var j updateJSON
	if err := c.decode(UpdateHeader, s, &j); err != nil {
		return Update{}, err
	}
	if err := j.validate(); err != nil {
		return Update{}, err
	}
	return Update(j), nil
}

func (c Codec) encode(header string, v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("wire: encode %s header: %w", header, err)
	}
	n := base64.RawURLEncoding.EncodedLen(len(raw))
	if n > c.limit() {
		return "", &TooLargeError{What: header + " header", Size: n, Limit: c.limit()}
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func (c Codec) decode(header, s string, dst any) error {
	if len(s) > c.limit() {
		return &TooLargeError{What: header + " header", Size: len(s), Limit: c.limit()}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return &FieldError{Header: header, Reason: "empty value"}
	}
	// Accept padded base64url too: many languages' encoders add it.
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return &FieldError{Header: header, Reason: "not base64url: " + err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(dst); err != nil {
		return &FieldError{Header: header, Reason: "not a JSON object of the expected shape: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &FieldError{Header: header, Reason: "trailing data after the JSON object"}
	}
	return nil
}

func (j *requestJSON) validate() error {
	bad := func(field, reason string) error {
		return &FieldError{Header: RequestHeader, Field: field, Reason: reason}
	}
	if j.ID == "" {
		return bad("id", "missing")
	}
	if len(j.ID) > maxIDLen || !isIDString(j.ID) {
		return bad("id", fmt.Sprintf("must be 1-%d characters of [A-Za-z0-9_-]", maxIDLen))
	}
	if j.Created < 0 {
		return bad("created", "negative")
	}
	if j.LastAccess < 0 {
		return bad("lastAccess", "negative")
	}
	if j.MaxInactive < 0 {
		return bad("maxInactive", "negative")
	}
	for k := range j.Attrs {
		if k == "" {
			return bad("attrs", "empty key")
		}
	}
	return nil
}

func (j *updateJSON) validate() error {
	bad := func(field, reason string) error {
		return &FieldError{Header: UpdateHeader, Field: field, Reason: reason}
	}
	for k := range j.Set {
		if k == "" {
			return bad("set", "empty key")
		}
	}
	for i, k := range j.Delete {
		if k == "" {
			return bad(fmt.Sprintf("delete[%d]", i), "empty key")
		}
		if _, ok := j.Set[k]; ok {
			return bad(fmt.Sprintf("delete[%d]", i), fmt.Sprintf("key %q is also in set", k))
		}
	}
	return nil
}

func isIDString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// StripHeaders removes from h every header whose name starts with
// HeaderPrefix, whatever its case. The node calls it on a client's request
// before it adds its own RequestHeader, and on an app's response after it has
// read the UpdateHeader.
func StripHeaders(h http.Header) {
	for name := range h {
		if len(name) >= len(HeaderPrefix) && strings.EqualFold(name[:len(HeaderPrefix)], HeaderPrefix) {
			delete(h, name)
		}
	}
}
