package channel

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrClosed: the Channel was shut down.
	ErrClosed = errors.New("channel: closed")
	// ErrNotStarted: Send, Request or OpenStream before Start.
	ErrNotStarted = errors.New("channel: not started")
	// ErrPeerUnavailable: the peer could not be reached, or the last dial
	// failed and its reconnect backoff has not expired.
	ErrPeerUnavailable = errors.New("channel: peer unavailable")
	// ErrHandshake: the authenticated handshake failed (wrong secret,
	// wrong cluster, garbage, timeout, or a protocol violation).
	ErrHandshake = errors.New("channel: handshake failed")
	// ErrWrongCluster: the peer belongs to another cluster (wrapped
	// together with ErrHandshake).
	ErrWrongCluster = errors.New("channel: peer is in another cluster")
	// ErrFrameTooLarge: a body is larger than Config.MaxFrame.
	ErrFrameTooLarge = errors.New("channel: frame too large")
	// ErrBadFrame: a received frame was malformed, oversized, failed
	// authentication or broke the protocol; its connection was closed.
	ErrBadFrame = errors.New("channel: bad frame")
	// ErrConnClosed: the connection carrying a request or stream closed
	// before it completed.
	ErrConnClosed = errors.New("channel: connection closed")
	// ErrAckTimeout: no reply within Config.AckTimeout.
	ErrAckTimeout = errors.New("channel: ack timeout")
	// ErrNoHandler: the peer has no handler for the message type (wrapped
	// by *RemoteError).
	ErrNoHandler = errors.New("channel: no handler for message type")
	// ErrStreamAborted: the stream's sender gave up (Abort, cancelled
	// context or lost connection) before the end.
	ErrStreamAborted = errors.New("channel: stream aborted")
	// ErrStreamClosed: Write on a stream that is closed or that the
	// receiver has already finished.
	ErrStreamClosed = errors.New("channel: stream closed")
)

// Remote error codes carried in error and result frames.
const (
	codeOK        uint16 = 0
	codeHandler   uint16 = 1
	codeNoHandler uint16 = 2
)

// RemoteError is the error a peer's handler returned (or the peer's refusal
// of a message type it has no handler for).
type RemoteError struct {
	Peer string // the peer's member name
	Type uint16 // the message type that was sent
	Msg  string // the peer's error text
	code uint16
}

// Error names the peer, the message type and the peer's error text.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("channel: peer %q, type %d: %s", e.Peer, e.Type, e.Msg)
}

// Unwrap returns ErrNoHandler when the peer had no handler for the type.
func (e *RemoteError) Unwrap() error {
	if e.code == codeNoHandler {
		return ErrNoHandler
	}
	return nil
}
