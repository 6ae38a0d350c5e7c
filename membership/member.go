package membership

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"
)

// Limits on a member record. A record that breaks one is refused both when it
// is set locally and when it arrives from the network.
const (
	MaxNameLen     = 64   // Member.Name, Member.Route, App.Name, cluster names
	MaxAddrLen     = 80   // Member.HTTPAddr, Member.ChannelAddr
	MaxVersionLen  = 64   // Meta.Version, App.Version
	MaxContextLen  = 128  // App.Context
	MaxApps        = 128  // len(Meta.Apps)
	MaxExtra       = 32   // len(Meta.Extra)
	MaxExtraKeyLen = 64   // keys of Meta.Extra
	MaxExtraValLen = 256  // values of Meta.Extra
	MaxRecordSize  = 8192 // encoded record, bytes
)

// Role says what a member does in the cluster.
type Role int

const (
	// RoleNode is a member that serves apps and owns sessions (the zero value).
	RoleNode Role = iota
	// RoleRouter is a member that routes requests and holds no sessions.
	RoleRouter
)

// String returns "node", "router", or "unknown" for any other value.
func (r Role) String() string {
	switch r {
	case RoleNode:
		return "node"
	case RoleRouter:
		return "router"
	}
	return "unknown"
}

// MarshalText encodes the role as its String form (for JSON and YAML).
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "node" or "router".
func (r *Role) UnmarshalText(b []byte) error {
	switch string(b) {
	case "node":
		*r = RoleNode
	case "router":
		*r = RoleRouter
	default:
		return fmt.Errorf("membership: unknown role %q (want node or router)", b)
	}
	return nil
}

// State is a member's liveness as seen by the local member.
type State int

const (
	// StateAlive: heard from recently.
	StateAlive State = iota + 1
	// StateSuspect: overdue but not yet declared dead (snapshot only, no event).
	StateSuspect
	// StateLeaving: left gracefully (or, for the local member, Leave was called).
	StateLeaving
	// StateDead: not heard from within the provider's failure-detection time.
	StateDead
)

// String returns "alive", "suspect", "leaving", "dead", or "unknown".
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateLeaving:
		return "leaving"
	case StateDead:
		return "dead"
	}
	return "unknown"
}

// MarshalText encodes the state as its String form (for JSON).
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// App is one application a member serves.
type App struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Context string `json:"context"`
}

// Meta is the free-form part of a member record. It changes at run time
// (apps deployed, draining) and is propagated by Provider.UpdateLocal.
type Meta struct {
	Apps     []App             `json:"apps"`
	Version  string            `json:"version"`  // herd version of the member
	Draining bool              `json:"draining"` // member takes no new sessions
	Extra    map[string]string `json:"extra,omitempty"`
}

// Member is one member of the cluster as the local member sees it.
//
// Name, Route, Role, HTTPAddr, ChannelAddr and Meta are the member's record,
// set by the member itself. Incarnation identifies one run of the member
// (its start time in Unix nanoseconds): a restarted member has a larger one.
// State and LastHeard are the local member's view.
type Member struct {
	Name        string    `json:"name"`
	Route       string    `json:"route"`
	Role        Role      `json:"role"`
	HTTPAddr    string    `json:"http"`
	ChannelAddr string    `json:"channel"`
	State       State     `json:"state"`
	Incarnation uint64    `json:"incarnation"`
	Meta        Meta      `json:"meta"`
	LastHeard   time.Time `json:"lastHeard"`
}

// Clone returns a deep copy that shares no slices or maps with m.
func (m Member) Clone() Member {
	m.Meta.Apps = slices.Clone(m.Meta.Apps)
	m.Meta.Extra = maps.Clone(m.Meta.Extra)
	return m
}

// SameRecord reports whether a and b carry the same record (every field the
// member sets itself, including Incarnation); State and LastHeard are ignored.
func SameRecord(a, b Member) bool {
	if a.Name != b.Name || a.Route != b.Route || a.Role != b.Role ||
		a.HTTPAddr != b.HTTPAddr || a.ChannelAddr != b.ChannelAddr ||
		a.Incarnation != b.Incarnation || a.Meta.Version != b.Meta.Version ||
		a.Meta.Draining != b.Meta.Draining {
		return false
	}
	return slices.Equal(a.Meta.Apps, b.Meta.Apps) && maps.Equal(a.Meta.Extra, b.Meta.Extra)
}

// FieldError is a validation error that names the field at fault.
type FieldError struct {
	Field  string // e.g. "Interface", "Local.Meta.Apps[2].Context"
	Reason string // e.g. "is required"
}

// Error returns "<Field> <Reason>".
func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

// Validate checks the record fields of m (not State or LastHeard) against the
// limits above and returns every problem found, each a *FieldError.
func (m Member) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	checkName(add, "Name", m.Name, true)
	checkName(add, "Route", m.Route, false)
	if m.Role != RoleNode && m.Role != RoleRouter {
		add("Role", "is %d, want RoleNode or RoleRouter", int(m.Role))
	}
	checkText(add, "HTTPAddr", m.HTTPAddr, MaxAddrLen)
	checkText(add, "ChannelAddr", m.ChannelAddr, MaxAddrLen)
	checkText(add, "Meta.Version", m.Meta.Version, MaxVersionLen)
	if len(m.Meta.Apps) > MaxApps {
		add("Meta.Apps", "has %d entries, more than %d", len(m.Meta.Apps), MaxApps)
	}
	for i, a := range m.Meta.Apps {
		p := fmt.Sprintf("Meta.Apps[%d].", i)
		if a.Name == "" {
			add(p+"Name", "is empty")
		}
		checkText(add, p+"Name", a.Name, MaxNameLen)
		checkText(add, p+"Version", a.Version, MaxVersionLen)
		checkText(add, p+"Context", a.Context, MaxContextLen)
	}
	if len(m.Meta.Extra) > MaxExtra {
		add("Meta.Extra", "has %d entries, more than %d", len(m.Meta.Extra), MaxExtra)
	}
	for k, v := range m.Meta.Extra {
		checkText(add, "Meta.Extra key", k, MaxExtraKeyLen)
		checkText(add, fmt.Sprintf("Meta.Extra[%q]", k), v, MaxExtraValLen)
	}
	return errors.Join(errs...)
}

// ValidName reports whether s may be a member or cluster name: 1 to
// MaxNameLen characters from [A-Za-z0-9._-].
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkName validates Name (dots allowed) or Route (no dots: the route ends a
// session id "<id>.<route>").
func checkName(add func(string, string, ...any), field, s string, dots bool) {
	switch {
	case s == "":
		add(field, "is empty")
	case !ValidName(s):
		add(field, "%q must be 1 to %d characters from [A-Za-z0-9._-]", s, MaxNameLen)
	case !dots && containsDot(s):
		add(field, "%q must not contain '.' (it ends a session id after a dot)", s)
	}
}

func containsDot(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return true
		}
	}
	return false
}

func checkText(add func(string, string, ...any), field, s string, max int) {
	if len(s) > max {
		add(field, "is %d bytes, more than %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		add(field, "is not valid UTF-8")
	}
}
