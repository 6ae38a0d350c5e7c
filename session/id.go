package session

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// IDBytes is the number of random bytes in a session id (192 bits).
const IDBytes = 24

// IDLength is the length of a session id: IDBytes in unpadded base64url.
const IDLength = 32

// MaxRouteLength bounds a route (node name) in a cookie value.
const MaxRouteLength = 64

// newID returns a fresh session id from crypto/rand.
func newID() string {
	var b [IDBytes]byte
	_, _ = rand.Read(b[:]) // never fails (Go >= 1.24 crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidID reports whether s has the shape of a session id (IDLength
// base64url characters). It says nothing about whether the session exists.
func ValidID(s string) bool {
	if len(s) != IDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return true
}

func isB64URL(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// CheckRoute returns an error unless route is a valid route (node name) for
// a cookie value: at most MaxRouteLength characters of [A-Za-z0-9._-]. The
// empty route is valid: the cookie is then just the id.
func CheckRoute(route string) error {
	if len(route) > MaxRouteLength {
		return fmt.Errorf("session: route %q: longer than %d characters", route, MaxRouteLength)
	}
	for i := 0; i < len(route); i++ {
		if c := route[i]; !isB64URL(c) && c != '.' {
			return fmt.Errorf("session: route %q: character %q not in [A-Za-z0-9._-]", route, c)
		}
	}
	return nil
}

// FormatCookieValue returns the cookie value for a session id on a route:
// "<id>.<route>", or just the id when route is empty.
func FormatCookieValue(id, route string) string {
	if route == "" {
		return id
	}
	return id + "." + route
}

// ParseCookieValue splits a cookie value "<id>[.<route>]" into its parts.
// It rejects, with a *CookieError, anything whose id is not IDLength
// base64url characters or whose route is not a valid route; it never
// panics. A well-formed value may still name no session.
func ParseCookieValue(v string) (id, route string, err error) {
	bad := func(reason string) (string, string, error) {
		shown := v
		if len(shown) > 80 {
			shown = shown[:80]
		}
		return "", "", &CookieError{Value: shown, Reason: reason}
	}
	if len(v) > IDLength+1+MaxRouteLength {
		return bad("too long")
	}
	id, route = v, ""
	if len(v) > IDLength {
		if v[IDLength] != '.' {
			return bad(fmt.Sprintf("want %d id characters then '.'", IDLength))
		}
		id, route = v[:IDLength], v[IDLength+1:]
		if route == "" {
			return bad("empty route after '.'")
		}
		if err := CheckRoute(route); err != nil {
			return bad("bad route")
		}
	}
	if !ValidID(id) {
		return bad(fmt.Sprintf("id must be %d base64url characters", IDLength))
	}
	return id, route, nil
}
