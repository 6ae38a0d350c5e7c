package server

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
)

// staticApp serves the files of one directory under a context path: ETag, Last-Modified, Range and
// conditional requests through http.ServeContent, index.html for directories, never a listing. Files are
// opened through an os.Root, so a symlink inside the bundle cannot reach outside its directory.
type staticApp struct {
	context string
	root    *os.Root
}

func newStaticApp(context, dir string) (*staticApp, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("static files: %w", err)
	}
	return &staticApp{context: context, root: root}, nil
}

func (s *staticApp) ready() bool                  { return true }
func (s *staticApp) status() any                  { return nil }
func (s *staticApp) stop(_ context.Context) error { return s.root.Close() }

func (s *staticApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(s.context, "/"))
	if rel == "" {
		// "/hello" -> "/hello/" so that the index page's relative links resolve inside the context.
		http.Redirect(w, r, s.context+"/"+querySuffix(r), http.StatusMovedPermanently)
		return
	}
	name := s.relName(r.URL.Path)
	f, fi, err := s.open(name)
	if err == nil && fi.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, r.URL.Path+"/"+querySuffix(r), http.StatusMovedPermanently)
			return
		}
		f, fi, err = s.open(path.Join(name, "index.html"))
	}
	if err != nil {
		// Absent, a directory without index.html, or a path the root refuses (an escaping symlink):
		// from outside they all look the same.
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	serve(w, r, f, fi)
}

func serve(w http.ResponseWriter, r *http.Request, f *os.File, fi fs.FileInfo) {
	w.Header().Set("ETag", etag(fi))
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// relName maps a URL path below the context to a name inside the root ("." for the context itself).
func (s *staticApp) relName(urlPath string) string {
	rel := strings.TrimPrefix(urlPath, strings.TrimSuffix(s.context, "/"))
	name := strings.TrimPrefix(path.Clean("/"+rel), "/")
	if name == "" {
		return "."
	}
	return name
}

// fileFor reports the regular file a URL path names, if there is one (a process app's static files are
// served by the node, everything else goes to the process).
func (s *staticApp) fileFor(urlPath string) (string, bool) {
	name := s.relName(urlPath)
	if name == "." {
		return "", false
	}
	fi, err := s.root.Stat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return name, true
}

// serveFile serves the named file, answering 404 if it went away meanwhile.
func (s *staticApp) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	f, fi, err := s.open(name)
	if err != nil || fi.IsDir() {
		if f != nil {
			f.Close()
		}
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	serve(w, r, f, fi)
}

// open opens a regular file or directory below the root.
func (s *staticApp) open(name string) (*os.File, fs.FileInfo, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fs.ErrNotExist
	}
	return f, fi, nil
}

// etag derives a strong validator from size and modification time, as nginx does: bundles are
// extracted once, so both change whenever the content does.
func etag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + "-" + strconv.FormatInt(fi.Size(), 36) + `"`
}

func querySuffix(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}
