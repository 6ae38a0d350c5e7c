package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/dirwatch"
	"github.com/herdproject/herd/supervisor"
)

// ErrNotDeployed is returned by Undeploy for a key that names no app.
var ErrNotDeployed = errors.New("no such app deployed")

// ErrContextTaken is returned when a bundle's context path is already served by another app name.
var ErrContextTaken = errors.New("context path already served by another app")

// Mount serves h in-process at the context path ctxPath under the name (embedding herd as a library).
// The handler's requests get sessions like any app's: use session.FromRequest or session.NewStore.
func (s *Server) Mount(name, ctxPath string, h http.Handler) error {
	ctxPath, err := cleanContext(ctxPath)
	if err != nil {
		return err
	}
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if err := s.checkContext(name, ctxPath); err != nil {
		return err
	}
	app := &App{Key: name, Name: name, Context: ctxPath, Kind: KindHandler, DeployedAt: s.opts.Now(),
		rt: handlerApp{h}}
	s.activate(app)
	return nil
}

type handlerApp struct{ http.Handler }

func (handlerApp) ready() bool                { return true }
func (handlerApp) status() any                { return nil }
func (handlerApp) stop(context.Context) error { return nil }

// DeployFile deploys the bundle at path (its name must be `<name>[##<version>].<zip|tar.gz>`). A bundle
// with the same key replaces the running one only once the new one is ready; a bundle that fails any
// check (archive, manifest, platform, context, health) leaves what runs untouched. Deploying the same
// bytes again is a no-op.
func (s *Server) DeployFile(ctx context.Context, file string) (AppInfo, error) {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	return s.deployLocked(ctx, file)
}

func (s *Server) deployLocked(ctx context.Context, file string) (AppInfo, error) {
	base := filepath.Base(file)
	if _, err := bundle.ParseFileName(base); err != nil {
		return AppInfo{}, err
	}
	sum, err := bundle.SHA256File(file)
	if err != nil {
		return AppInfo{}, err
	}
	prev, had := s.bundles[base]
	if had && prev.sha256 == sum {
		if a := s.apps.load().byKey[prev.key]; a != nil {
			return a.info(), nil
		}
	}
	dir := filepath.Join(s.opts.WorkDir, "apps", strings.ReplaceAll(base, "#", "_")+"."+sum[:12]+"."+randSuffix())
	b, err := bundle.Extract(file, dir, s.opts.Limits)
	if err != nil {
		return AppInfo{}, err
	}
	app, err := s.startBundle(ctx, b, base, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return AppInfo{}, fmt.Errorf("deploy %s: %w", base, err)
	}
	s.bundles[base] = deployedFile{key: app.Key, sha256: sum}
	if had && prev.key != app.Key { // same file, new manifest version: the old key goes
		if old := s.apps.remove(prev.key); old != nil {
			s.appsChanged()
			_ = s.stopApp(ctx, old)
		}
	}
	s.log.Info("app deployed", "event", "app.deployed", "app", app.Key, "context", app.Context,
		"kind", app.Kind, "bundle", base, "sha256", sum)
	s.RecordEvent(Event{Type: "app.deployed", Member: s.opts.Name, App: app.Key, Message: "from " + base})
	return app.info(), nil
}

// startBundle builds the runtime of an extracted bundle and puts it in the routing table once ready.
func (s *Server) startBundle(ctx context.Context, b *bundle.Bundle, base, dir string) (*App, error) {
	m := b.Manifest
	if err := m.CheckPlatform("", ""); err != nil {
		return nil, err
	}
	app := &App{Key: appKey(m.Name, m.Version), Name: m.Name, Version: m.Version, Context: m.Context, Kind: Kind(m.Kind),
		Dir: dir, BundleFile: base, SHA256: b.SHA256, DeployedAt: s.opts.Now()}
	ctxPath, err := cleanContext(m.Context)
	if err != nil {
		return nil, err
	}
	app.Context = ctxPath
	if err := s.checkContext(app.Name, ctxPath); err != nil {
		return nil, err
	}
	var static *staticApp
	if m.Static != "" {
		if static, err = newStaticApp(ctxPath, filepath.Join(dir, filepath.FromSlash(m.Static))); err != nil {
			return nil, err
		}
	}
	switch app.Kind {
	case KindStatic:
		if static == nil {
			return nil, errors.New("manifest: a static app needs a static directory")
		}
		app.rt = static
	case KindProcess:
		proc, err := s.startProcess(ctx, app, m)
		if err != nil {
			if static != nil {
				_ = static.stop(ctx)
			}
			return nil, err
		}
		app.rt = &withStatic{static: static, appRuntime: newProcessApp(app.Key, proc, s.tr, s.opts.TrustedProxies, s.log)}
	default:
		return nil, fmt.Errorf("manifest: kind %q is not static or process", m.Kind)
	}
	s.activate(app)
	return app, nil
}

func (s *Server) startProcess(ctx context.Context, app *App, m *bundle.Manifest) (*supervisor.Process, error) {
	env := maps.Clone(m.Env)
	if env == nil {
		env = map[string]string{}
	}
	env["HERD_NODE"] = s.opts.Name
	env["HERD_CONTEXT"] = app.Context
	env["HERD_APP"] = app.Key
	start, stop := s.opts.AppStartTimeout, s.opts.AppStopTimeout
	if m.StartTimeout > 0 {
		start = m.StartTimeout
	}
	if m.StopTimeout > 0 {
		stop = m.StopTimeout
	}
	proc, err := supervisor.New(supervisor.Spec{
		Name: app.Key, Dir: app.Dir, Command: m.Command, Env: env, HealthPath: m.Health,
		StartTimeout: start, StopTimeout: stop, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	if err := proc.Start(s.lifetime(ctx)); err != nil {
		return nil, err
	}
	return proc, nil
}

// lifetime is the context app processes live in: the server's, once started.
func (s *Server) lifetime(ctx context.Context) context.Context {
	if s.runCtx != nil {
		return s.runCtx
	}
	return context.WithoutCancel(ctx)
}

// activate wraps the app's runtime in the session layer and swaps it into the routing table; an app
// with the same key that it replaces is stopped after the swap.
func (s *Server) activate(app *App) {
	app.handler = s.opts.Sessions.Handler(app.Key, app.Context, app.rt)
	app.state.Store(int32(AppRunning))
	defer s.appsChanged()
	if old := s.apps.put(app); old != nil {
		s.goFunc(func() { // the old version finishes its in-flight requests while the new one serves
			_ = s.stopApp(context.Background(), old)
		})
	}
}

// Undeploy removes the app with key (or every app deployed from the bundle file named key) and stops
// it. Its sessions expire normally.
func (s *Server) Undeploy(ctx context.Context, key string) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	return s.undeployLocked(ctx, key)
}

func (s *Server) undeployLocked(ctx context.Context, key string) error {
	if f, ok := s.bundles[key]; ok {
		delete(s.bundles, key)
		key = f.key
	}
	for name, f := range s.bundles {
		if f.key == key {
			delete(s.bundles, name)
		}
	}
	app := s.apps.remove(key)
	if app == nil {
		return fmt.Errorf("undeploy %s: %w", key, ErrNotDeployed)
	}
	s.log.Info("app undeployed", "event", "app.undeployed", "app", app.Key, "context", app.Context)
	s.RecordEvent(Event{Type: "app.undeployed", Member: s.opts.Name, App: app.Key})
	s.appsChanged()
	return s.stopApp(ctx, app)
}

func (s *Server) appsChanged() {
	if s.opts.AppsChanged != nil {
		s.opts.AppsChanged()
	}
}

// stopApp stops an app that already left the routing table and removes its files.
func (s *Server) stopApp(ctx context.Context, app *App) error {
	app.state.Store(int32(AppStopping))
	err := app.rt.stop(ctx)
	if app.Dir != "" {
		if rmErr := os.RemoveAll(app.Dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	if err != nil {
		s.log.Warn("app stop", "event", "app.stop_error", "app", app.Key, "err", err)
	}
	return err
}

// checkContext refuses a context path served by an app of another name (versions of one name share it).
func (s *Server) checkContext(name, ctxPath string) error {
	for _, a := range s.apps.load().byPath[ctxPath] {
		if a.Name != name {
			return fmt.Errorf("%w: %s is served by %s", ErrContextTaken, ctxPath, a.Key)
		}
	}
	return nil
}

// cleanContext checks a context path: absolute, clean, no trailing slash except for ROOT ("/").
func cleanContext(p string) (string, error) {
	if p == "" || p[0] != '/' {
		return "", fmt.Errorf("context %q must start with /", p)
	}
	c := path.Clean(p)
	if c != strings.TrimSuffix(p, "/") && c != p {
		return "", fmt.Errorf("context %q is not a clean path (use %q)", p, c)
	}
	for _, reserved := range []string{"/manager", "/healthz", "/readyz"} {
		if c == reserved || strings.HasPrefix(c, reserved+"/") {
			return "", fmt.Errorf("context %q is reserved for the node", p)
		}
	}
	return c, nil
}

func randSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newDeployWatcher watches the deploy dir for bundle files.
func (s *Server) newDeployWatcher() (*dirwatch.Watcher, error) {
	return dirwatch.New(dirwatch.Options{
		Dir:    s.opts.DeployDir,
		Accept: func(name string) bool { _, err := bundle.ParseFileName(name); return err == nil },
		Complete: func(p string) error {
			_, err := bundle.Open(p, s.opts.Limits)
			return err
		},
		Scanned: func() { s.scanned.Store(true) },
		Logger:  s.log,
	})
}

// onDeployDirEvent deploys, redeploys or undeploys after a change in the deploy dir.
func (s *Server) onDeployDirEvent(ctx context.Context, ev dirwatch.Event) {
	switch ev.Kind {
	case dirwatch.Ready:
		start := time.Now()
		if _, err := s.DeployFile(ctx, ev.Path); err != nil {
			s.log.Error("bundle not deployed", "event", "app.deploy_failed", "bundle", ev.Name, "err", err)
			s.RecordEvent(Event{Type: "app.deploy_failed", Member: s.opts.Name, Message: ev.Name + ": " + err.Error()})
			return
		}
		s.log.Debug("deploy dir bundle handled", "bundle", ev.Name, "took", time.Since(start))
	case dirwatch.Invalid:
		s.log.Error("bundle refused", "event", "app.bundle_invalid", "bundle", ev.Name, "err", ev.Err)
		s.RecordEvent(Event{Type: "app.bundle_invalid", Member: s.opts.Name, Message: ev.Name + ": " + ev.Err.Error()})
	case dirwatch.Removed:
		if err := s.Undeploy(ctx, ev.Name); err != nil && !errors.Is(err, ErrNotDeployed) {
			s.log.Error("undeploy failed", "event", "app.undeploy_failed", "bundle", ev.Name, "err", err)
		}
	}
}

// withStatic serves a process app's static directory itself and proxies everything else.
type withStatic struct {
	static *staticApp
	appRuntime
}

func (w *withStatic) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if w.static != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if name, ok := w.static.fileFor(r.URL.Path); ok {
			w.static.serveFile(rw, r, name)
			return
		}
	}
	w.appRuntime.ServeHTTP(rw, r)
}

func (w *withStatic) stop(ctx context.Context) error {
	err := w.appRuntime.stop(ctx)
	if w.static != nil {
		err = errors.Join(err, w.static.stop(ctx))
	}
	return err
}

// appKey is the deployment key of a bundle: "name" or "name##version".
func appKey(name, version string) string {
	if version == "" {
		return name
	}
	return name + bundle.VersionSep + version
}
