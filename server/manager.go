package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/herdproject/herd/bundle"
)

// MemberInfo is one member as GET /manager/api/members shows it (the manager API contract).
type MemberInfo struct {
	Name      string          `json:"name"`
	Route     string          `json:"route"`
	Role      string          `json:"role"`
	State     string          `json:"state"`
	HTTP      string          `json:"http"`
	Channel   string          `json:"channel,omitempty"`
	Apps      []MemberAppInfo `json:"apps"`
	LastHeard *time.Time      `json:"lastHeard,omitempty"`
	Local     bool            `json:"local,omitempty"`
	// Incarnation tells runs of one member apart (a restart has a larger one).
	Incarnation uint64 `json:"incarnation,omitempty"`
	// Version is the member's herd version.
	Version string `json:"version,omitempty"`
	// Draining is set while the member takes no new sessions.
	Draining bool `json:"draining,omitempty"`
}

// MemberAppInfo is an app a member serves.
type MemberAppInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Context string `json:"context"`
}

// Apps lists the deployed apps, by context path then version.
func (s *Server) Apps() []AppInfo {
	counts := map[string]int{}
	for _, si := range s.opts.Sessions.List() {
		counts[si.App]++
	}
	var out []AppInfo
	for _, a := range s.apps.load().apps() {
		ai := a.info()
		ai.Sessions = counts[a.Key]
		out = append(out, ai)
	}
	return out
}

// LocalMember describes this node for the members list.
func (s *Server) LocalMember() MemberInfo {
	m := MemberInfo{Name: s.opts.Name, Route: s.opts.Name, Role: "node", State: "alive", HTTP: s.Addr(),
		Local: true, Apps: []MemberAppInfo{}}
	for _, a := range s.apps.load().apps() {
		m.Apps = append(m.Apps, MemberAppInfo{Name: a.Name, Version: a.Version, Context: a.Context})
	}
	return m
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// readyz answers 200 when every deployed app is running and the extra readiness condition holds.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	var problems []string
	if s.opts.DeployDir != "" && !s.scanned.Load() {
		problems = append(problems, "deploying the bundles of the deploy dir")
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, a := range s.apps.load().apps() {
		if st := a.State(); st != AppRunning {
			problems = append(problems, fmt.Sprintf("app %s is %s", a.Key, st))
		}
	}
	status := http.StatusOK
	if len(problems) > 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": len(problems) == 0, "problems": problems})
}

// manager serves /manager/api/*. Every call needs the Bearer token (or basic auth when configured).
func (s *Server) manager(w http.ResponseWriter, r *http.Request) {
	if isDashboardPath(r.URL.Path) { // the HTML dashboard checks the same credentials (dashboard.go)
		s.serveDashboard(w, r)
		return
	}
	takeQueryToken(r) // a token pasted into an API URL is not accepted there, nor logged
	if !s.managerAuthorized(w, r) {
		return
	}
	if strings.HasPrefix(r.URL.Path, "/manager/debug/pprof/") {
		servePprof(w, r)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/manager/api")
	switch {
	case rest == "/members" && r.Method == http.MethodGet:
		members := []MemberInfo{s.LocalMember()}
		if s.opts.Members != nil {
			members = s.opts.Members()
		}
		writeJSON(w, http.StatusOK, members)
	case rest == "/apps" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, orEmpty(s.Apps()))
	case strings.HasPrefix(rest, "/apps/") && r.Method == http.MethodPut:
		s.managerDeploy(w, r, strings.TrimPrefix(rest, "/apps/"))
	case strings.HasPrefix(rest, "/apps/") && r.Method == http.MethodDelete:
		s.managerUndeploy(w, r, strings.TrimPrefix(rest, "/apps/"))
	case rest == "/sessions" && r.Method == http.MethodGet:
		list := s.opts.Sessions.List()
		if app := r.URL.Query().Get("app"); app != "" {
			kept := list[:0]
			for _, si := range list {
				if si.App == app {
					kept = append(kept, si)
				}
			}
			list = kept
		}
		writeJSON(w, http.StatusOK, orEmpty(list))
	case strings.HasPrefix(rest, "/sessions/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(rest, "/sessions/")
		if _, ok := s.opts.Sessions.Get(id); !ok {
			writeError(w, http.StatusNotFound, fmt.Errorf("no session %q", id))
			return
		}
		s.opts.Sessions.Invalidate(id)
		w.WriteHeader(http.StatusNoContent)
	case rest == "/reload" && r.Method == http.MethodPost:
		if s.opts.Reload == nil {
			writeError(w, http.StatusNotImplemented, errors.New("this node has no config file to reload"))
			return
		}
		if err := s.opts.Reload(); err != nil {
			writeError(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"reloaded": "ok"})
	case rest == "/events" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Events())
	case rest == "/stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.stats())
	case rest == "/cluster" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.clusterView(r))
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("no manager API %s %s", r.Method, r.URL.Path))
	}
}

func (s *Server) managerAuthorized(w http.ResponseWriter, r *http.Request) bool {
	auth := s.auth.Load()
	if auth.token == "" && auth.user == "" {
		writeError(w, http.StatusForbidden, errors.New("manager API disabled: set manager.token in the config"))
		return false
	}
	if auth.admits(r) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="herd manager"`)
	writeError(w, http.StatusUnauthorized, errors.New("manager API: missing or wrong credentials"))
	return false
}

// managerDeploy takes a bundle as the request body, deploys it, and keeps it in the deploy dir so the
// node deploys it again after a restart.
func (s *Server) managerDeploy(w http.ResponseWriter, r *http.Request, name string) {
	if _, err := bundle.ParseFileName(name); err != nil || strings.ContainsAny(name, `/\`) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad bundle file name %q: %v", name, err))
		return
	}
	if s.opts.FarmDir != "" {
		s.farmUpload(w, r, name)
		return
	}
	dir := s.opts.DeployDir
	if dir == "" {
		dir = filepath.Join(s.opts.WorkDir, "uploads")
	}
	// Stage under the final name in a hidden dir (the watcher ignores it), deploy, then move it in.
	staged, cleanup, ok := s.receiveUpload(w, r, dir, name)
	if !ok {
		return
	}
	defer cleanup()
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	info, err := s.deployLocked(r.Context(), staged)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err)
		return
	}
	if err := os.Rename(staged, filepath.Join(dir, name)); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("deployed, but not kept in the deploy dir: %w", err))
		return
	}
	writeJSON(w, http.StatusCreated, info)
}

func writeFile(name string, r io.Reader) (int64, error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (s *Server) managerUndeploy(w http.ResponseWriter, r *http.Request, name string) {
	if strings.ContainsAny(name, `/\`) || name == "" || strings.HasPrefix(name, ".") {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad app name %q", name))
		return
	}
	if s.opts.FarmDir != "" && s.farmRemove(w, r, name) {
		return
	}
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if s.opts.DeployDir != "" { // the bundle file goes too, or the node would deploy it again on restart
		for file, df := range s.bundles {
			if file == name || df.key == name {
				_ = os.Remove(filepath.Join(s.opts.DeployDir, file))
			}
		}
	}
	if err := s.undeployLocked(r.Context(), name); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrNotDeployed) {
			status = http.StatusNotFound
		}
		writeError(w, status, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) stats() map[string]any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := map[string]any{
		"node":       s.opts.Name,
		"apps":       len(s.apps.load().byKey),
		"sessions":   s.opts.Sessions.Len(),
		"goroutines": runtime.NumGoroutine(),
		"heapBytes":  ms.HeapAlloc,
	}
	if s.opts.Stats != nil {
		for k, v := range s.opts.Stats() {
			if _, taken := out[k]; !taken {
				out[k] = v
			}
		}
	}
	return out
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// servePprof serves the Go profiler under /manager/debug/pprof/ (behind the manager's auth).
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch name := strings.TrimPrefix(r.URL.Path, "/manager/debug/pprof/"); name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}

// managerAuth is the manager API's credentials; they may change on reload.
type managerAuth struct{ token, user, password string }

// admits reports whether r carries the manager's Bearer token or basic auth credentials, each
// compared in constant time.
func (a *managerAuth) admits(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.token != "" &&
		subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) == 1 {
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && a.user != "" &&
		subtle.ConstantTimeCompare([]byte(u), []byte(a.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(a.password)) == 1
}

// SetManagerAuth replaces the manager API's credentials (hot reload).
func (s *Server) SetManagerAuth(token, user, password string) {
	s.auth.Store(&managerAuth{token: token, user: user, password: password})
}

// farmUpload puts an uploaded bundle into the farm's watch dir once it checked out, then waits (up to
// a minute) for the farm to have deployed it here: 201 with the app, or 202 when it takes longer.
func (s *Server) farmUpload(w http.ResponseWriter, r *http.Request, name string) {
	staged, cleanup, ok := s.receiveUpload(w, r, s.opts.FarmDir, name)
	if !ok {
		return
	}
	defer cleanup()
	b, err := bundle.OpenAs(staged, name, s.opts.Limits)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err)
		return
	}
	sum := b.SHA256
	if err := os.Rename(staged, filepath.Join(s.opts.FarmDir, name)); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("bundle uploaded to the farm", "event", "app.farm_upload", "bundle", name, "sha256", sum)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, a := range s.Apps() {
			if a.BundleFile == name && a.SHA256 == sum && a.State == AppRunning.String() {
				writeJSON(w, http.StatusCreated, a)
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"farmed": name, "sha256": sum,
		"status": "in the farm's watch dir; not running on this node yet"})
}

// farmRemove removes the farm's bundle named name (a file name, or the key of an app deployed from
// one) and waits for the app to go here. It reports whether it answered.
func (s *Server) farmRemove(w http.ResponseWriter, r *http.Request, name string) bool {
	var file, key string
	for _, a := range s.Apps() {
		if a.BundleFile != "" && (a.BundleFile == name || a.Key == name) {
			file, key = a.BundleFile, a.Key
		}
	}
	if file == "" {
		file = name
	}
	path := filepath.Join(s.opts.FarmDir, file)
	if _, err := os.Stat(path); err != nil {
		return false // not farmed from here: a local undeploy
	}
	if err := os.Remove(path); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return true
	}
	s.log.Info("bundle removed from the farm", "event", "app.farm_remove", "bundle", file)
	deadline := time.Now().Add(30 * time.Second)
	for key != "" && time.Now().Before(deadline) {
		gone := true
		for _, a := range s.Apps() {
			if a.Key == key {
				gone = false
			}
		}
		if gone {
			break
		}
		select {
		case <-r.Context().Done():
			return true
		case <-time.After(50 * time.Millisecond):
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// NodeView is one node's part of GET /manager/api/cluster.
type NodeView struct {
	Name     string         `json:"name"`
	HTTP     string         `json:"http"`
	State    string         `json:"state"`
	Apps     []AppInfo      `json:"apps,omitempty"`
	Sessions int            `json:"sessions"`
	Stats    map[string]any `json:"stats,omitempty"`
	Error    string         `json:"error,omitempty"` // why this node could not be asked
}

// clusterView asks every live node (this one directly, the others over HTTP with the caller's own
// credentials) for its apps and stats, in parallel and bounded by a few seconds: the whole cluster in
// one answer, whichever node is asked.
func (s *Server) clusterView(r *http.Request) map[string]any {
	var list []MemberInfo
	if s.opts.Members != nil {
		list = s.opts.Members()
	} else {
		list = []MemberInfo{s.LocalMember()}
	}
	views := make([]NodeView, 0, len(list))
	for _, m := range list {
		if m.Role != "node" {
			continue
		}
		views = append(views, NodeView{Name: m.Name, HTTP: m.HTTP, State: m.State})
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 3 * time.Second}
	var wg sync.WaitGroup
	for i := range views {
		v := &views[i]
		if v.Name == s.opts.Name {
			v.Apps, v.Stats = s.Apps(), s.stats()
			v.Sessions = s.opts.Sessions.Len()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			get := func(path string, out any) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+v.HTTP+"/manager/api"+path, nil)
				if err != nil {
					return err
				}
				if val := r.Header.Get("Authorization"); val != "" {
					req.Header.Set("Authorization", val)
				}
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("HTTP %d", resp.StatusCode)
				}
				return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out)
			}
			if err := get("/apps", &v.Apps); err != nil {
				v.Error = err.Error()
				return
			}
			if err := get("/stats", &v.Stats); err != nil {
				v.Error = err.Error()
				return
			}
			if n, ok := v.Stats["sessions"].(float64); ok {
				v.Sessions = int(n)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, v := range views {
		total += v.Sessions
	}
	return map[string]any{"askedNode": s.opts.Name, "members": list, "nodes": views, "sessionsHeld": total}
}

// receiveUpload writes the request body, at most Limits.MaxTotalSize bytes, to a hidden staging dir
// inside dir under the bundle's file name. On failure it has answered the client (ok false); on
// success the caller runs cleanup when done with the staged file.
func (s *Server) receiveUpload(w http.ResponseWriter, r *http.Request, dir, name string) (staged string, cleanup func(), ok bool) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return "", nil, false
	}
	stage, err := os.MkdirTemp(dir, ".upload-")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return "", nil, false
	}
	cleanup = func() { _ = os.RemoveAll(stage) }
	staged = filepath.Join(stage, name)
	limit := s.opts.Limits.MaxTotalSize
	n, err := writeFile(staged, io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Errorf("reading the upload: %w", err))
	case n > limit:
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("bundle larger than %d bytes", limit))
	default:
		return staged, cleanup, true
	}
	cleanup()
	return "", nil, false
}
