package session

import (
	"errors"
	"fmt"
)

// Sentinel errors callers may branch on with errors.Is.
var (
	// ErrNotFound: no live session has the given id.
	ErrNotFound = errors.New("session not found")
	// ErrInvalidated: the session was invalidated or expired; it takes no
	// more changes.
	ErrInvalidated = errors.New("session invalidated")
	// ErrTooLarge: a change would take the session over Options.MaxSize;
	// the concrete error is a *TooLargeError.
	ErrTooLarge = errors.New("session too large")
	// ErrInvalidKey: an attribute key is empty or not valid UTF-8.
	ErrInvalidKey = errors.New("invalid attribute key")
	// ErrInvalidCookie: a cookie value is not <id>[.<route>]; the concrete
	// error is a *CookieError.
	ErrInvalidCookie = errors.New("invalid session cookie")
	// ErrInvalidDelta: a Delta is malformed; the concrete error is a
	// *DeltaError naming the field.
	ErrInvalidDelta = errors.New("invalid delta")
	// ErrGap: ApplyRemote applied a partial delta although versions are
	// missing before it (or the session was unknown), so the local copy may
	// lack changes; fetch a Snapshot from the sender to repair it.
	ErrGap = errors.New("delta version gap")
	// ErrSkipped: the request was marked with Skip; it never touches the
	// session store.
	ErrSkipped = errors.New("session store skipped for this request")
	// ErrNoBinding: the request did not pass through Manager.Handler (for
	// example, a Store used outside it).
	ErrNoBinding = errors.New("request not bound to a session manager (use Manager.Handler)")
	// ErrNoSession: the request has no session to act on.
	ErrNoSession = errors.New("request has no session")
	// ErrHeadersWritten: creating or renewing a session needs a Set-Cookie,
	// but the response headers were already written.
	ErrHeadersWritten = errors.New("response headers already written; cannot set the session cookie")
)

// TooLargeError reports a change refused because the session's encoded
// attributes would exceed the limit.
type TooLargeError struct {
	Key   string // the attribute being set ("" for a batch)
	Size  int    // the session's encoded size with the change, in bytes
	Limit int    // Options.MaxSize
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("session: setting %q would make the session %d bytes, limit %d", e.Key, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// CookieError reports a malformed session cookie value.
type CookieError struct {
	Value  string // the value, cut to 80 bytes
	Reason string
}

func (e *CookieError) Error() string {
	return fmt.Sprintf("session: cookie value %q: %s", e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidCookie) true.
func (e *CookieError) Unwrap() error { return ErrInvalidCookie }

// DeltaError reports a malformed Delta, naming the field.
type DeltaError struct {
	Field  string
	Reason string
}

func (e *DeltaError) Error() string {
	return fmt.Sprintf("session: delta field %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidDelta) true.
func (e *DeltaError) Unwrap() error { return ErrInvalidDelta }
