package membership

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// EventType says what happened to a member.
type EventType int

const (
	// EventJoin: a member (or a new incarnation of it) appeared.
	EventJoin EventType = iota + 1
	// EventUpdate: a member's record changed (apps, addresses, draining...).
	EventUpdate
	// EventLeave: a member left gracefully; Member.State is StateLeaving.
	EventLeave
	// EventDead: a member stopped answering, or was replaced by a restarted
	// incarnation; Member.State is StateDead.
	EventDead
)

// String returns "join", "update", "leave", "dead", or "unknown".
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventDead:
		return "dead"
	}
	return "unknown"
}

// Event is one change in membership. Member is a copy the receiver owns.
//
// For one member name the order is always: Join, any number of Update, then
// Leave or Dead. A restarted member (a larger Incarnation under the same name)
// is reported as Dead for the old incarnation, then Join for the new one.
type Event struct {
	Type   EventType
	Member Member
}

// Provider discovers members and agrees with them on who is alive.
// All methods are safe for concurrent use.
type Provider interface {
	// Start opens sockets and joins the cluster. ctx bounds only the start-up
	// (sockets, the first join attempt); the provider runs until Shutdown.
	// A second call returns ErrStarted.
	Start(ctx context.Context) error

	// Members returns a snapshot of the live members (alive, suspect),
	// including the local member, sorted by name. The caller owns the slice.
	Members() []Member

	// Events returns the provider's default event stream (created on first
	// call, the same channel afterwards). It starts with a Join for every
	// peer already known, then follows changes in order. It never carries the
	// local member, and it is closed by Shutdown.
	Events() <-chan Event

	// Subscribe returns an additional, independent event stream with the
	// same contract as Events. Close it when done.
	Subscribe() *Subscription

	// Local returns a copy of the local member.
	Local() Member

	// UpdateLocal lets fn change the local record (Route, Role, addresses,
	// Meta) and propagates the result to peers. Changes to Name, Incarnation,
	// State and LastHeard are ignored. An invalid or oversized result is
	// refused and the record stays as it was.
	UpdateLocal(fn func(*Member)) error

	// Leave tells peers this member is leaving, so they drop it at once
	// instead of waiting for failure detection. It returns when the leave was
	// sent (or ctx ends). The provider stays usable for reading until Shutdown.
	Leave(ctx context.Context) error

	// Shutdown stops the provider and closes its event streams. Without a
	// prior Leave, peers see this member as dead after their detection time.
	// It is idempotent.
	Shutdown() error
}

// Errors callers can branch on.
var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("membership: provider already started")
	// ErrNotStarted is returned by Leave before Start.
	ErrNotStarted = errors.New("membership: provider not started")
	// ErrShutdown is returned by Start, Leave or UpdateLocal after Shutdown.
	ErrShutdown = errors.New("membership: provider shut down")
	// ErrLeft is returned by UpdateLocal after Leave.
	ErrLeft = errors.New("membership: local member has left")
	// ErrRecordTooLarge is returned when an encoded record would exceed MaxRecordSize.
	ErrRecordTooLarge = errors.New("membership: member record too large")
)

// Key purposes for DeriveKey. Each use of the cluster secret gets its own key.
const (
	PurposeMulticastHMAC = "herd membership multicast hmac v1"
	PurposeGossipKeyring = "herd membership gossip keyring v1"
)

// MinSecretLen is the shortest cluster secret accepted.
const MinSecretLen = 16

// DeriveKey derives a size-byte key for one purpose from the cluster secret
// and the cluster name with HKDF-SHA256, so that two clusters with different
// names never share keys even when they share a secret, and so that a key
// used for one purpose reveals nothing about another.
func DeriveKey(secret, cluster, purpose string, size int) ([]byte, error) {
	if len(secret) < MinSecretLen {
		return nil, &FieldError{Field: "Secret", Reason: fmt.Sprintf("is %d bytes, want at least %d", len(secret), MinSecretLen)}
	}
	if !ValidName(cluster) {
		return nil, &FieldError{Field: "Cluster", Reason: fmt.Sprintf("%q must be 1 to %d characters from [A-Za-z0-9._-]", cluster, MaxNameLen)}
	}
	if purpose == "" || size <= 0 || size > 64 {
		return nil, fmt.Errorf("membership: derive key: bad purpose %q or size %d", purpose, size)
	}
	info := purpose + "\x00" + cluster
	return hkdf.Key(sha256.New, []byte(secret), []byte("herd cluster secret"), info, size)
}

// CheckClusterSecret validates the Cluster and Secret fields shared by the
// provider configs, returning *FieldError values.
func CheckClusterSecret(cluster, secret string) error {
	var errs []error
	if !ValidName(cluster) {
		errs = append(errs, &FieldError{Field: "Cluster", Reason: fmt.Sprintf("%q must be 1 to %d characters from [A-Za-z0-9._-]", cluster, MaxNameLen)})
	}
	if len(secret) < MinSecretLen {
		errs = append(errs, &FieldError{Field: "Secret", Reason: fmt.Sprintf("is %d bytes, want at least %d", len(secret), MinSecretLen)})
	}
	return errors.Join(errs...)
}
