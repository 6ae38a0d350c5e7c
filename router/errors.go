package router

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/herdproject/herd/internal/h1"
)

// Errors callers can branch on (errors.Is).
var (
	// ErrNoRoute: no node serves the request's path.
	ErrNoRoute = errors.New("router: no node serves this path")
	// ErrNoBackend: nodes serve the path but none is available (dead, draining, failing, or all tried).
	ErrNoBackend = errors.New("router: no node available")
	// ErrPinnedUnavailable: the pin header names a node that is unknown or already failed.
	ErrPinnedUnavailable = errors.New("router: pinned node not available")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("router: already started")
	// ErrShutdown is returned by Start or Reload after Shutdown.
	ErrShutdown = errors.New("router: shut down")
	// ErrBodyTooLarge: the request body exceeds Options.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("router: request body too large")
	// ErrBackendGone: membership declared the node dead (or it left) while a request waited on it;
	// the attempt was abandoned (and retried elsewhere when the method allows it).
	ErrBackendGone = h1.ErrGone
)

// DialError is a failure to connect to a node (fields Addr and Err): nothing of the request was
// sent, so it is safe to retry for any method.
type DialError = h1.DialError

// ProxyError is the outcome of a request that got no response from any node. Status is what the
// client is answered; Node is the last node tried ("" when none was chosen).
type ProxyError struct {
	Status   int
	Node     string
	Attempts int
	Err      error
}

// Error returns a one-line description naming the node and the attempt count.
func (e *ProxyError) Error() string {
	if e.Node == "" {
		return fmt.Sprintf("%s after %d attempts", e.Err, e.Attempts)
	}
	return fmt.Sprintf("node %s: %s (attempt %d)", e.Node, e.Err, e.Attempts)
}

// Unwrap returns the cause.
func (e *ProxyError) Unwrap() error { return e.Err }

// FieldError is an invalid option or setting; Field names it ("Settings.Policy").
type FieldError struct {
	Field  string
	Reason string
}

// Error returns "router: <Field> <Reason>".
func (e *FieldError) Error() string { return "router: " + e.Field + " " + e.Reason }

// statusClientClosed is logged (never sent) when the client went away before the response.
const statusClientClosed = 499

// statusText is http.StatusText with a name for 499.
func statusText(code int) string {
	if code == statusClientClosed {
		return "Client Closed Request"
	}
	return http.StatusText(code)
}
