package router

import (
	"net/http"
	"strings"

	"github.com/herdproject/herd/session"
)

// sessionCookie scans the request's Cookie headers for cookies called name and returns the id and
// route of the first whose value is a well-formed session cookie ("<id>.<route>"), preferring one
// whose route known accepts (a browser may send several for nested paths, some stale). Malformed
// values are skipped; it never fails.
func sessionCookie(h http.Header, name string, known func(route string) bool) (id, route string) {
	var firstID, firstRoute string
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			v, ok := cookieValue(part, name)
			if !ok {
				continue
			}
			i, r, err := session.ParseCookieValue(v)
			if err != nil {
				continue
			}
			if r != "" && known != nil && known(r) {
				return i, r
			}
			if firstID == "" {
				firstID, firstRoute = i, r
			}
		}
	}
	return firstID, firstRoute
}

// cookieValue returns the value of one "name=value" cookie pair when its name is name.
func cookieValue(part, name string) (string, bool) {
	part = strings.Trim(part, " \t")
	k, v, ok := strings.Cut(part, "=")
	if !ok || strings.Trim(k, " \t") != name {
		return "", false
	}
	v = strings.Trim(v, " \t")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v, true
}

// setCookieSession returns the id and route of a session cookie named name set by a response
// header line ("JSESSIONID=<id>.<route>; Path=/; HttpOnly"), or ok false.
func setCookieSession(line, name string) (id, route string, ok bool) {
	first, _, _ := strings.Cut(line, ";")
	v, found := cookieValue(first, name)
	if !found || v == "" {
		return "", "", false
	}
	id, route, err := session.ParseCookieValue(v)
	if err != nil {
		return "", "", false
	}
	return id, route, true
}
