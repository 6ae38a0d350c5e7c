package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tEntry is an archive entry a test builds by hand.
type tEntry struct {
	name string
	body string
	mode fs.FileMode // type bits and permissions; 0 means a 0644 file
	tar  byte        // tar type flag override (hard links, devices, FIFOs)
	link string      // tar link target (symlinks and hard links)
}

const goodManifest = "name: app\nkind: static\nstatic: public/\n"

// goodEntries is a valid static bundle named app.
func goodEntries() []tEntry {
	return []tEntry{
		{name: "manifest.yaml", body: goodManifest},
		{name: "public/", mode: fs.ModeDir | 0o755},
		{name: "public/index.html", body: "<h1>hi</h1>"},
	}
}

func zipBytes(t testing.TB, entries []tEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		body := e.body
		if mode&fs.ModeSymlink != 0 && e.link != "" {
			body = e.link
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarGzBytes(t testing.TB, entries []tEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Mode: int64(mode.Perm()), Linkname: e.link}
		if mode&fs.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if mode&fs.ModeSetgid != 0 {
			h.Mode |= 0o2000
		}
		switch {
		case e.tar != 0:
			h.Typeflag = e.tar
		case mode.IsDir():
			h.Typeflag = tar.TypeDir
		case mode&fs.ModeSymlink != 0:
			h.Typeflag = tar.TypeSymlink
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// snapshot describes every path under dir (type, mode, content or link target), without following
// symlinks.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(data)
		}
		snap[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func diffSnapshots(before, after map[string]string) string {
	var diffs []string
	for p, d := range after {
		if before[p] != d {
			diffs = append(diffs, fmt.Sprintf("changed or new: %s (%s)", p, d))
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			diffs = append(diffs, "removed: "+p)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

// wantEntryError checks that err is an *EntryError naming entry and matching sentinel.
func wantEntryError(t *testing.T, err error, entry string, sentinel error) {
	t.Helper()
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T) is not an *EntryError", err, err)
	}
	if ee.Entry != entry {
		t.Errorf("error names entry %q, want %q (%v)", ee.Entry, entry, err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %v does not match %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", entry)) {
		t.Errorf("message %q does not quote the entry", err)
	}
}

// checkInside fails if any symlink under dir resolves (lexically) outside it.
func checkInside(t testing.TB, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("readlink %s: %v", p, err)
		}
		if filepath.IsAbs(target) {
			t.Fatalf("absolute symlink %s -> %s", p, target)
		}
		resolved := filepath.Join(filepath.Dir(p), target)
		if rel, err := filepath.Rel(dir, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("symlink %s -> %s leaves %s", p, target, dir)
		}
		return nil
	})
}
