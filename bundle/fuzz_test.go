package bundle

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	seeds := []string{
		goodManifest, counterManifest, "", "name: a\n", "- x\n", "name: [a]\n", "name: a\nfoo: 1\n",
		"name: a\nkind: process\ncommand: [bin/a]\nenv: {PORT: 1}\n", "&a [*a, *a]", "name: !!binary aGk=\n",
		"name: a\nname: a\n", "name: a\n---\nname: b\n", "name: a\ncontext: /a/../b\nstatic: ../x\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) || !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("error %v (%T) is not a *ManifestError", err, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseManifest returned a manifest that does not validate: %v", err)
		}
		if m.Kind != KindStatic && m.Kind != KindProcess || m.Context == "" || m.Context[0] != '/' {
			t.Fatalf("accepted %+v", m)
		}
	})
}

// fuzzArchive writes data as an archive named app.<ext> and checks that Open and Extract agree,
// never panic, and never write outside the destination.
func fuzzArchive(t *testing.T, ext string, data []byte) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "in", "app."+ext)
	writeFile(t, archive, data)
	lim := Limits{MaxTotalSize: 1 << 20, MaxFiles: 64, MaxFileSize: 256 << 10}
	_, openErr := Open(archive, lim)
	dest := filepath.Join(dir, "out", "app")
	b, err := Extract(archive, dest, lim)
	if (openErr == nil) != (err == nil) {
		t.Fatalf("Open and Extract disagree: %v / %v", openErr, err)
	}
	// Nothing but the archive, the out dir and (on success) dest may exist.
	for p := range snapshot(t, dir) {
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == "." || rel == "in" || rel == "out" || rel == filepath.Join("in", "app."+ext):
		case err == nil && isUnder(rel, filepath.Join("out", "app")):
		default:
			t.Fatalf("unexpected path %s (extract err %v)", rel, err)
		}
	}
	if err != nil {
		return
	}
	checkInside(t, dest)
	if b.Manifest == nil || b.FileName.Name != "app" {
		t.Fatalf("bundle %+v", b)
	}
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, _ error) error {
		if fi, err := d.Info(); err == nil && d.Type()&fs.ModeSymlink == 0 && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky|0o002) != 0 {
			t.Fatalf("%s has mode %v", p, fi.Mode())
		}
		return nil
	})
}

// isUnder reports whether the relative path rel is dir or lies below it.
func isUnder(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+string(filepath.Separator))
}

func archiveSeeds(f *testing.F, build func(testing.TB, []tEntry) []byte, ext string) {
	f.Helper()
	sets := [][]tEntry{
		goodEntries(),
		append(goodEntries(), tEntry{name: "../../evil", body: "x"}),
		append(goodEntries(), tEntry{name: "a", mode: fs.ModeSymlink | 0o777, link: ".."}, tEntry{name: "a/x", body: "x"}),
		append(goodEntries(), tEntry{name: "l", mode: fs.ModeSymlink | 0o777, link: "public/index.html"}),
		append(goodEntries(), tEntry{name: "public/index.html", body: "dup"}),
		{{name: "manifest.yaml", body: "name: app\nkind: process\ncommand: [bin/app]\n"}, {name: "bin/app", body: "#!/bin/sh\n", mode: 0o755}},
	}
	if ext != ExtZip {
		sets = append(sets, append(goodEntries(), tEntry{name: "hl", tar: tar.TypeLink, link: "public/index.html"}))
	}
	for _, s := range sets {
		f.Add(build(f, s))
	}
	out := filepath.Join(f.TempDir(), "hello."+ext)
	if _, err := Pack("../webapps/hello", out, PackOptions{}); err != nil {
		f.Fatal(err)
	}
	hello, err := os.ReadFile(out)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hello)
}

func FuzzOpenZip(f *testing.F) {
	archiveSeeds(f, zipBytes, ExtZip)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzArchive(t, ExtZip, data) })
}

func FuzzOpenTarGz(f *testing.F) {
	archiveSeeds(f, tarGzBytes, ExtTarGz)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzArchive(t, ExtTarGz, data) })
}
