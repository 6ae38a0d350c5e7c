package router

import (
	"net/http"
	"strings"

	"github.com/herdproject/herd/internal/h1"
	"github.com/herdproject/herd/session"
)

// sessionCookie scans the request's Cookie headers for cookies called name and returns the id and
// route of the first whose value is a well-formed session cookie ("<id>.<route>"), preferring one
// whose route known accepts (a browser may send several for nested paths, some stale). Malformed
// values are skipped; it never fails.
func sessionCookie(h http.Header, name string, known func(route string) bool) (id, route string) {
	var s cookieScan
	for _, line := range h["Cookie"] {
		if scanCookies(&s, line, name, known) {
			break
		}
	}
	return s.id, s.route
}

// cookieScan is the state of a search for the session cookie over several Cookie lines.
type cookieScan struct {
	id, route string
}

// scanCookies looks at one Cookie line (see sessionCookie); true means the search is over (a cookie
// with a known route was found).
func scanCookies[T string | []byte](s *cookieScan, line T, name string, known func(route string) bool) bool {
	for len(line) > 0 {
		end := 0
		for end < len(line) && line[end] != ';' {
			end++
		}
		part := line[:end]
		line = line[min(end+1, len(line)):]
		v, ok := cookieValue(part, name)
		if !ok {
			continue
		}
		i, r, err := session.ParseCookieValue(string(v))
		if err != nil {
			continue
		}
		if r != "" && known != nil && known(r) {
			s.id, s.route = i, r
			return true
		}
		if s.id == "" {
			s.id, s.route = i, r
		}
	}
	return false
}

// cookieValue returns the value of one "name=value" cookie pair when its name is name.
func cookieValue[T string | []byte](part T, name string) (T, bool) {
	part = h1.TrimOWS(part)
	eq := 0
	for eq < len(part) && part[eq] != '=' {
		eq++
	}
	if eq == len(part) || string(h1.TrimOWS(part[:eq])) != name {
		return part[:0], false
	}
	v := h1.TrimOWS(part[eq+1:])
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
