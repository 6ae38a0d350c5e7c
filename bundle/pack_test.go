package bundle

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyTree copies the regular files and directories of src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripHello(t *testing.T) {
	for _, ext := range []string{ExtZip, ExtTarGz, ExtTgz} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "hello."+ext)
			info, err := Pack("../webapps/hello", out, PackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if info.Manifest.Name != "hello" || info.Manifest.Context != "/hello" || info.Manifest.Static != "public" {
				t.Errorf("manifest: %+v", info.Manifest)
			}
			sum, err := SHA256File(out)
			if err != nil || sum != info.SHA256 || len(sum) != 64 {
				t.Errorf("SHA256File = %q, %v; Pack said %q", sum, err, info.SHA256)
			}
			b, err := Open(out, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(out)
			if b.SHA256 != info.SHA256 || b.Size != st.Size() || b.FileName.Key() != "hello" || b.Dir != "" {
				t.Errorf("Open: %+v", b)
			}
			dest := filepath.Join(dir, "apps", "hello")
			eb, err := Extract(out, dest, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if eb.Dir != dest || eb.SHA256 != info.SHA256 {
				t.Errorf("Extract: %+v", eb)
			}
			for _, f := range []string{"manifest.yaml", "public/index.html", "public/style.css", "public/robots.txt"} {
				want, err := os.ReadFile(filepath.Join("../webapps/hello", f))
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(dest, f))
				if err != nil || string(got) != string(want) {
					t.Errorf("%s: got %q, %v", f, got, err)
				}
			}
			if b.Entries != 5 || b.UncompressedSize == 0 {
				t.Errorf("entries %d, uncompressed %d", b.Entries, b.UncompressedSize)
			}
		})
	}
}

func TestPackDeterministic(t *testing.T) {
	for _, ext := range []string{ExtZip, ExtTarGz} {
		t.Run(ext, func(t *testing.T) {
			src := t.TempDir()
			copyTree(t, "../webapps/hello", src)
			a := filepath.Join(t.TempDir(), "hello."+ext)
			ia, err := Pack(src, a, PackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// New mtimes and a round trip through other directories must not change the bytes.
			later := time.Now().Add(time.Hour)
			_ = filepath.WalkDir(src, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, later, later) })
			b := filepath.Join(t.TempDir(), "hello."+ext)
			ib, err := Pack(src, b, PackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ia.SHA256 != ib.SHA256 {
				t.Fatalf("two packs differ: %s vs %s", ia.SHA256, ib.SHA256)
			}
			// A changed file must change the digest (the comparison above can fail).
			if err := os.WriteFile(filepath.Join(src, "public", "robots.txt"), []byte("changed"), 0o644); err != nil {
				t.Fatal(err)
			}
			ic, err := Pack(src, filepath.Join(t.TempDir(), "hello."+ext), PackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ic.SHA256 == ia.SHA256 {
				t.Fatal("a changed input packed to the same digest")
			}
		})
	}
}

// processSource makes a process app source dir whose build writes bin/app.
func processSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	manifest := `name: proc
version: "2"
context: /proc
kind: process
command: [bin/app]
platform: linux/arm64
build: [sh, -c, 'mkdir -p bin && printf "#!/bin/sh\necho %s/%s/%s\n" "$GOOS" "$GOARCH" "$CGO_ENABLED" > bin/app && chmod 755 bin/app && echo built']
exclude: ["*.log", tmp/, "docs/draft.md"]
`
	writeFile(t, filepath.Join(src, "manifest.yaml"), []byte(manifest))
	writeFile(t, filepath.Join(src, "public", "a.txt"), []byte("a"))
	writeFile(t, filepath.Join(src, "server.log"), []byte("log"))
	writeFile(t, filepath.Join(src, "tmp", "scratch"), []byte("x"))
	writeFile(t, filepath.Join(src, "docs", "draft.md"), []byte("x"))
	writeFile(t, filepath.Join(src, "docs", "keep.md"), []byte("keep"))
	writeFile(t, filepath.Join(src, ".git", "config"), []byte("x"))
	if err := os.Symlink("public", filepath.Join(src, "current")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestPackProcessBundle(t *testing.T) {
	for _, ext := range []string{ExtZip, ExtTarGz} {
		t.Run(ext, func(t *testing.T) {
			src := processSource(t)
			// The output lives inside the source dir: it must not pack itself.
			out := filepath.Join(src, "proc."+ext)
			writeFile(t, out, []byte("stale"))
			var stdout strings.Builder
			info, err := Pack(src, out, PackOptions{Stdout: &stdout})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), "built") {
				t.Errorf("build stdout %q", stdout.String())
			}
			if info.FileName.Key() != "proc##2" || info.Manifest.Static != "public" {
				t.Errorf("info: %+v %+v", info.FileName, info.Manifest)
			}
			dest := filepath.Join(t.TempDir(), "proc")
			if _, err := Extract(out, dest, DefaultLimits()); err != nil {
				t.Fatal(err)
			}
			app, err := os.ReadFile(filepath.Join(dest, "bin", "app"))
			if err != nil || !strings.Contains(string(app), "linux/arm64/0") {
				t.Errorf("bin/app = %q, %v (GOOS/GOARCH/CGO_ENABLED from platform)", app, err)
			}
			if st, err := os.Stat(filepath.Join(dest, "bin", "app")); err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("bin/app mode: %v %v", st, err)
			}
			for _, gone := range []string{"server.log", "tmp", "docs/draft.md", ".git", "proc." + ext} {
				if _, err := os.Lstat(filepath.Join(dest, gone)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s was packed (%v)", gone, err)
				}
			}
			if target, err := os.Readlink(filepath.Join(dest, "current")); err != nil || target != "public" {
				t.Errorf("symlink current -> %q, %v", target, err)
			}
			if data, err := os.ReadFile(filepath.Join(dest, "docs", "keep.md")); err != nil || string(data) != "keep" {
				t.Errorf("docs/keep.md = %q, %v", data, err)
			}
		})
	}
}

func TestPackRefuses(t *testing.T) {
	t.Run("symlink outside", func(t *testing.T) {
		src := t.TempDir()
		copyTree(t, "../webapps/hello", src)
		if err := os.Symlink("../../etc", filepath.Join(src, "public", "etc")); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "hello.zip")
		if _, err := Pack(src, out, PackOptions{}); err == nil || !strings.Contains(err.Error(), "public/etc") {
			t.Fatalf("err = %v, want the link named", err)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("output written anyway: %v", err)
		}
	})
	t.Run("absolute symlink", func(t *testing.T) {
		src := t.TempDir()
		copyTree(t, "../webapps/hello", src)
		if err := os.Symlink("/etc/passwd", filepath.Join(src, "public", "pw")); err != nil {
			t.Fatal(err)
		}
		if _, err := Pack(src, filepath.Join(t.TempDir(), "hello.zip"), PackOptions{}); err == nil {
			t.Fatal("absolute symlink packed")
		}
	})
	t.Run("build fails", func(t *testing.T) {
		src := t.TempDir()
		copyTree(t, "../webapps/hello", src)
		writeFile(t, filepath.Join(src, "manifest.yaml"), []byte("name: hello\nbuild: [sh, -c, 'echo broken >&2; exit 3']\n"))
		outDir := t.TempDir()
		_, err := Pack(src, filepath.Join(outDir, "hello.zip"), PackOptions{})
		if !errors.Is(err, ErrBuild) || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("err = %v, want ErrBuild with stderr", err)
		}
		if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
			t.Errorf("left %v behind", entries)
		}
	})
	t.Run("name mismatch", func(t *testing.T) {
		_, err := Pack("../webapps/hello", filepath.Join(t.TempDir(), "other.zip"), PackOptions{})
		if !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), `"hello"`) || !strings.Contains(err.Error(), `"other"`) {
			t.Fatalf("err = %v, want both names", err)
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		if _, err := Pack(t.TempDir(), filepath.Join(t.TempDir(), "x.zip"), PackOptions{}); !errors.Is(err, ErrNoManifest) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad extension", func(t *testing.T) {
		if _, err := Pack("../webapps/hello", filepath.Join(t.TempDir(), "hello.rar"), PackOptions{}); !errors.Is(err, ErrUnsupportedFormat) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPackThroughSymlinkedDir(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	copyTree(t, "../webapps/hello", src)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(link, "hello.zip")
	writeFile(t, filepath.Join(src, "hello.zip"), []byte("stale output"))
	info, err := Pack(link, out, PackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Entries != 5 {
		t.Errorf("%d entries, want 5 (the output must not pack itself)", info.Entries)
	}
	nested := filepath.Join(dir, "dist", "sub", "hello.tgz")
	if _, err := Pack(src, nested, PackOptions{}); err != nil {
		t.Fatalf("output dir not created: %v", err)
	}
}
