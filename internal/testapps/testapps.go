// Package testapps packs the sample webapps that ship with herd into bundles for tests, once per test
// binary, and builds variants of them (another version, a broken manifest, a malicious archive). It
// also holds the small helpers several packages' tests share (free ports, a buffer for logs).
package testapps

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/herdproject/herd/bundle"
)

// RepoRoot is the repository's root directory (found from this file's location).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	mu    sync.Mutex
	cache = map[string]string{}
	dir   string
)

// packDir is a directory shared by the bundles of one test binary, removed by Cleanup.
func packDir() (string, error) {
	if dir != "" {
		return dir, nil
	}
	d, err := os.MkdirTemp("", "herd-testapps-")
	if err != nil {
		return "", err
	}
	dir = d
	return d, nil
}

// Cleanup removes the packed bundles; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
		dir, cache = "", map[string]string{}
	}
}

// Bundle packs webapps/<app> (once per test binary) with the file name fileName (for example
// "counter.zip" or "counter##2.zip"; the manifest's version is rewritten to match the file name) and
// returns a copy in t's temp dir, so tests may move or delete it.
func Bundle(t testing.TB, app, fileName string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	key := app + "/" + fileName
	p, ok := cache[key]
	if !ok {
		d, err := packDir()
		if err != nil {
			t.Fatal(err)
		}
		fn, err := bundle.ParseFileName(fileName)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(d, app+".zip")
		if _, err := os.Stat(base); err != nil {
			src := filepath.Join(RepoRoot(), "webapps", app)
			if _, err := bundle.Pack(src, base, bundle.PackOptions{}); err != nil {
				t.Fatalf("pack %s: %v", app, err)
			}
		}
		p = filepath.Join(d, strings.ReplaceAll(key, "/", "_"))
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(p, fileName)
		if fn.Version == "" {
			copyFile(t, base, p)
		} else {
			withVersion(t, base, p, fn.Version)
		}
		cache[key] = p
	}
	out := filepath.Join(t.TempDir(), fileName)
	copyFile(t, p, out)
	return out
}

// withVersion copies the zip bundle from to to, with the manifest's version set to v.
func withVersion(t testing.TB, from, to, v string) {
	t.Helper()
	zr, err := zip.OpenReader(from)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range zr.File {
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "manifest.yaml" {
			var lines []string
			for _, l := range strings.Split(string(body), "\n") {
				if !strings.HasPrefix(l, "version:") {
					lines = append(lines, l)
				}
			}
			body = []byte("version: \"" + v + "\"\n" + strings.Join(lines, "\n"))
		}
		hdr := e.FileHeader
		w, err := zw.CreateHeader(&hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ZipSlip writes a zip bundle named fileName whose manifest is a valid static app and which also holds
// an entry that climbs out of the extraction dir ("../../<escape>").
func ZipSlip(t testing.TB, path, escape string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range map[string]string{
		"manifest.yaml":     "name: evil\ncontext: /evil\nkind: static\nstatic: public/\n",
		"public/index.html": "hi",
		"../../" + escape:   "owned",
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
