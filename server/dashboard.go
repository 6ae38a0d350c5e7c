package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// The dashboard is one HTML page built from the files under dashboard/: the stylesheet and the
// script are inlined into it, so the page is a single authenticated response (a page opened with
// ?token= could not authenticate separate asset requests), and a Content-Security-Policy allows
// exactly those two inline blocks by their hashes and nothing from elsewhere.
//
//go:embed dashboard/index.html dashboard/dashboard.css dashboard/dashboard.js
var dashboardFiles embed.FS

// DashboardPath is where a node serves its dashboard (behind the manager credentials).
const DashboardPath = "/manager/"

// dashboardPage is the assembled page and the headers that go with it.
type dashboardPage struct {
	body []byte
	csp  string
	etag string
}

// dashboard assembles the page once.
var dashboard = sync.OnceValues(buildDashboard)

func buildDashboard() (*dashboardPage, error) {
	read := func(name string) (string, error) {
		b, err := dashboardFiles.ReadFile("dashboard/" + name)
		if err != nil {
			return "", fmt.Errorf("dashboard: embedded %s: %w", name, err)
		}
		return string(b), nil
	}
	index, err := read("index.html")
	if err != nil {
		return nil, err
	}
	css, err := read("dashboard.css")
	if err != nil {
		return nil, err
	}
	js, err := read("dashboard.js")
	if err != nil {
		return nil, err
	}
	if strings.Contains(css, "</style") || strings.Contains(js, "</script") {
		return nil, fmt.Errorf("dashboard: an asset contains a closing tag and cannot be inlined")
	}
	for _, r := range []struct{ tag, inline string }{
		{`<link rel="stylesheet" href="dashboard.css">`, "<style>" + css + "</style>"},
		{`<script src="dashboard.js"></script>`, "<script>" + js + "</script>"},
	} {
		if strings.Count(index, r.tag) != 1 {
			return nil, fmt.Errorf("dashboard: index.html must reference %q exactly once", r.tag)
		}
		index = strings.Replace(index, r.tag, r.inline, 1)
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	sum := sha256.Sum256([]byte(index))
	return &dashboardPage{
		body: []byte(index),
		csp: "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) +
			"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
	}, nil
}

// isDashboardPath reports whether the manager request is for the dashboard page rather than the API.
func isDashboardPath(p string) bool {
	return p == "/manager" || p == DashboardPath || p == DashboardPath+"index.html"
}

// serveDashboard answers the dashboard page. It accepts the manager credentials the API accepts and,
// for this page only, the token as ?token= (the page's script then sends it as a Bearer token on its
// API calls).
func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	queryToken := takeQueryToken(r)
	if r.URL.Path == "/manager" {
		target := DashboardPath
		if queryToken != "" {
			target += "?token=" + url.QueryEscape(queryToken)
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	if !s.dashboardAuthorized(w, r, queryToken) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("the dashboard answers GET, not %s", r.Method))
		return
	}
	page, err := dashboard()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", page.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("ETag", page.etag)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(page.body)
	}
}

// takeQueryToken returns the token query parameter and removes it from the request's URL and
// RequestURI, so the access log, which reads them after the handler returns, never records it.
func takeQueryToken(r *http.Request) string {
	if !strings.Contains(r.URL.RawQuery, "token") {
		return ""
	}
	q := r.URL.Query()
	if _, ok := q["token"]; !ok {
		return ""
	}
	tok := q.Get("token")
	q.Set("token", "REDACTED")
	r.URL.RawQuery = q.Encode()
	r.RequestURI = r.URL.RequestURI()
	return tok
}

// dashboardAuthorized checks the dashboard request's credentials: the ?token= value, a Bearer token
// or basic auth, each compared in constant time. When they are missing or wrong it answers 401
// with a basic auth challenge when basic auth is configured (so a browser asks for it) and a short
// page saying how to open the dashboard.
func (s *Server) dashboardAuthorized(w http.ResponseWriter, r *http.Request, queryToken string) bool {
	auth := s.auth.Load()
	if auth.token == "" && auth.user == "" {
		dashboardRefusal(w, http.StatusForbidden, "The manager is disabled: set manager.token (or manager.username "+
			"and manager.password) in the node's config.")
		return false
	}
	if auth.token != "" && queryToken != "" &&
		subtle.ConstantTimeCompare([]byte(queryToken), []byte(auth.token)) == 1 {
		return true
	}
	if auth.admits(r) {
		return true
	}
	if auth.user != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="herd manager", charset="UTF-8"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herd manager"`)
	}
	how := "Open it as /manager/?token=<manager.token>."
	if auth.token == "" {
		how = "Sign in with manager.username and manager.password."
	} else if auth.user != "" {
		how = "Open it as /manager/?token=<manager.token>, or sign in with manager.username and manager.password."
	}
	dashboardRefusal(w, http.StatusUnauthorized, "Missing or wrong manager credentials. "+how)
	return false
}

// dashboardRefusal answers a small HTML page with the reason.
func dashboardRefusal(w http.ResponseWriter, status int, reason string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "<!doctype html><meta charset=utf-8><title>herd manager</title><h1>herd manager</h1><p>"+
		html.EscapeString(reason)+"</p>\n")
}
