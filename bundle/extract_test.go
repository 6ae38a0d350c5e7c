package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sandbox is a directory holding an archive and a good deployment of it at dest.
type sandbox struct {
	dir, dest string
}

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	dir := t.TempDir()
	s := sandbox{dir: dir, dest: filepath.Join(dir, "apps", "app")}
	good := writeFile(t, filepath.Join(dir, "good", "app.zip"), zipBytes(t, goodEntries()))
	if _, err := Extract(good, s.dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.dest, "marker"), []byte("good deployment"))
	return s
}

// refused checks that Open and Extract both refuse archive with an *EntryError naming entry, and
// that Extract changed nothing anywhere in the sandbox.
func (s sandbox) refused(t *testing.T, archive string, lim Limits, entry string, sentinel error) {
	t.Helper()
	before := snapshot(t, s.dir)
	_, err := Open(archive, lim)
	wantEntryError(t, err, entry, sentinel)
	_, err = Extract(archive, s.dest, lim)
	wantEntryError(t, err, entry, sentinel)
	if d := diffSnapshots(before, snapshot(t, s.dir)); d != "" {
		t.Errorf("refused extraction changed the sandbox:\n%s", d)
	}
	if data, err := os.ReadFile(filepath.Join(s.dest, "marker")); err != nil || string(data) != "good deployment" {
		t.Errorf("good deployment damaged: %q %v", data, err)
	}
}

func TestExtractRefusesMalicious(t *testing.T) {
	type tc struct {
		name     string
		entries  func(s sandbox) []tEntry
		entry    func(s sandbox) string
		sentinel error
		zipOnly  bool
		tarOnly  bool
	}
	fixed := func(e string) func(sandbox) string { return func(sandbox) string { return e } }
	with := func(extra ...tEntry) func(sandbox) []tEntry {
		return func(sandbox) []tEntry { return append(goodEntries(), extra...) }
	}
	cases := []tc{
		{name: "zip slip", entries: with(tEntry{name: "../../evil", body: "x"}), entry: fixed("../../evil"), sentinel: ErrUnsafeEntry},
		{name: "dotdot inside", entries: with(tEntry{name: "public/../../evil", body: "x"}), entry: fixed("public/../../evil"), sentinel: ErrUnsafeEntry},
		{name: "absolute", entries: func(s sandbox) []tEntry {
			return append(goodEntries(), tEntry{name: filepath.Join(s.dir, "abs-evil"), body: "x"})
		}, entry: func(s sandbox) string { return filepath.Join(s.dir, "abs-evil") }, sentinel: ErrUnsafeEntry},
		{name: "backslash", entries: with(tEntry{name: `..\..\evil`, body: "x"}), entry: fixed(`..\..\evil`), sentinel: ErrUnsafeEntry},
		{name: "drive letter", entries: with(tEntry{name: "C:/evil", body: "x"}), entry: fixed("C:/evil"), sentinel: ErrUnsafeEntry},
		{name: "NUL byte", entries: with(tEntry{name: "public/a\x00b", body: "x"}), entry: fixed("public/a\x00b"), sentinel: ErrUnsafeEntry, zipOnly: true},
		{name: "symlink to /etc/passwd then write through it", entries: with(
			tEntry{name: "pw", mode: fs.ModeSymlink | 0o777, link: "/etc/passwd"},
			tEntry{name: "pw", body: "root::0:0::/:/bin/sh"}), entry: fixed("pw"), sentinel: ErrUnsafeEntry},
		{name: "absolute symlink into sandbox then file below", entries: func(s sandbox) []tEntry {
			return append(goodEntries(), tEntry{name: "l", mode: fs.ModeSymlink | 0o777, link: s.dir},
				tEntry{name: "l/evil", body: "x"})
		}, entry: fixed("l"), sentinel: ErrUnsafeEntry},
		{name: "symlink a -> .. then a/x", entries: with(
			tEntry{name: "a", mode: fs.ModeSymlink | 0o777, link: ".."},
			tEntry{name: "a/x", body: "x"}), entry: fixed("a"), sentinel: ErrUnsafeEntry},
		{name: "deep symlink escape", entries: with(
			tEntry{name: "public/l", mode: fs.ModeSymlink | 0o777, link: "../../x"}), entry: fixed("public/l"), sentinel: ErrUnsafeEntry},
		{name: "write through inside symlink", entries: with(
			tEntry{name: "l", mode: fs.ModeSymlink | 0o777, link: "public"},
			tEntry{name: "l/x", body: "x"}), entry: fixed("l/x"), sentinel: ErrUnsafeEntry},
		{name: "symlink over existing dir", entries: with(
			tEntry{name: "public", mode: fs.ModeSymlink | 0o777, link: "."}), entry: fixed("public"), sentinel: ErrUnsafeEntry},
		{name: "file below file", entries: with(
			tEntry{name: "f", body: "x"}, tEntry{name: "f/x", body: "y"}), entry: fixed("f/x"), sentinel: ErrUnsafeEntry},
		{name: "duplicate", entries: with(tEntry{name: "public/index.html", body: "second"}), entry: fixed("public/index.html"), sentinel: ErrUnsafeEntry},
		{name: "duplicate via dot", entries: with(tEntry{name: "./public/index.html", body: "second"}), entry: fixed("./public/index.html"), sentinel: ErrUnsafeEntry},
		{name: "hard link", entries: with(tEntry{name: "hl", tar: tar.TypeLink, link: "/etc/passwd"}), entry: fixed("hl"), sentinel: ErrUnsafeEntry, tarOnly: true},
		{name: "char device", entries: with(tEntry{name: "dev", tar: tar.TypeChar}), entry: fixed("dev"), sentinel: ErrUnsafeEntry, tarOnly: true},
		{name: "block device", entries: with(tEntry{name: "blk", tar: tar.TypeBlock}), entry: fixed("blk"), sentinel: ErrUnsafeEntry, tarOnly: true},
		{name: "fifo", entries: with(tEntry{name: "fifo", tar: tar.TypeFifo}), entry: fixed("fifo"), sentinel: ErrUnsafeEntry, tarOnly: true},
		{name: "zip device", entries: with(tEntry{name: "dev", mode: fs.ModeDevice | fs.ModeCharDevice | 0o600}), entry: fixed("dev"), sentinel: ErrUnsafeEntry, zipOnly: true},
		{name: "zip socket", entries: with(tEntry{name: "sock", mode: fs.ModeSocket | 0o600}), entry: fixed("sock"), sentinel: ErrUnsafeEntry, zipOnly: true},
		{name: "symlink manifest", entries: func(sandbox) []tEntry {
			return []tEntry{{name: "manifest.yaml", mode: fs.ModeSymlink | 0o777, link: "public/m"}}
		}, entry: fixed("manifest.yaml"), sentinel: ErrNoManifest},
	}
	for _, c := range cases {
		for _, ext := range []string{ExtZip, ExtTarGz} {
			if c.zipOnly && ext != ExtZip || c.tarOnly && ext == ExtZip {
				continue
			}
			t.Run(c.name+"/"+ext, func(t *testing.T) {
				s := newSandbox(t)
				var data []byte
				if ext == ExtZip {
					data = zipBytes(t, c.entries(s))
				} else {
					data = tarGzBytes(t, c.entries(s))
				}
				archive := writeFile(t, filepath.Join(s.dir, "in", "app."+ext), data)
				s.refused(t, archive, DefaultLimits(), c.entry(s), c.sentinel)
			})
		}
	}
}

// bombZip is a zip whose single entry claims claim bytes but inflates to real bytes.
func bombZip(t *testing.T, claim uint64, real int) []byte {
	t.Helper()
	payload := make([]byte, real)
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, flate.BestCompression)
	_, _ = fw.Write(payload)
	_ = fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range goodEntries() {
		w, _ := zw.Create(e.name)
		_, _ = w.Write([]byte(e.body))
	}
	h := &zip.FileHeader{Name: "public/bomb.bin", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(payload),
		CompressedSize64: uint64(deflated.Len()), UncompressedSize64: claim}
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(deflated.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractRefusesBombs(t *testing.T) {
	small := Limits{MaxTotalSize: 256 << 10, MaxFiles: 20, MaxFileSize: 64 << 10}
	t.Run("zip bomb lying about its size", func(t *testing.T) {
		s := newSandbox(t)
		archive := writeFile(t, filepath.Join(s.dir, "in", "app.zip"), bombZip(t, 100, 4<<20))
		if st, _ := os.Stat(archive); st.Size() > 16<<10 {
			t.Fatalf("bomb is %d bytes, not a bomb", st.Size())
		}
		s.refused(t, archive, small, "public/bomb.bin", nil)
	})
	t.Run("zip bomb admitting its size", func(t *testing.T) {
		s := newSandbox(t)
		archive := writeFile(t, filepath.Join(s.dir, "in", "app.zip"), bombZip(t, 4<<20, 4<<20))
		s.refused(t, archive, small, "public/bomb.bin", ErrTooLarge)
	})
	for _, ext := range []string{ExtZip, ExtTarGz} {
		build := zipBytes
		if ext != ExtZip {
			build = tarGzBytes
		}
		t.Run("total too large/"+ext, func(t *testing.T) {
			s := newSandbox(t)
			entries := goodEntries()
			for i := range 5 {
				entries = append(entries, tEntry{name: fmt.Sprintf("public/f%d", i), body: strings.Repeat("z", 60<<10)})
			}
			archive := writeFile(t, filepath.Join(s.dir, "in", "app."+ext), build(t, entries))
			s.refused(t, archive, small, "public/f4", ErrTooLarge)
		})
		t.Run("too many files/"+ext, func(t *testing.T) {
			s := newSandbox(t)
			entries := goodEntries()
			for i := range 30 {
				entries = append(entries, tEntry{name: fmt.Sprintf("public/f%02d", i), body: "x"})
			}
			archive := writeFile(t, filepath.Join(s.dir, "in", "app."+ext), build(t, entries))
			var ee *EntryError
			_, err := Extract(archive, s.dest, small)
			if !errors.As(err, &ee) || !errors.Is(err, ErrTooManyFiles) {
				t.Fatalf("err = %v", err)
			}
			s.refused(t, archive, small, ee.Entry, ErrTooManyFiles)
		})
		t.Run("implicit dirs count/"+ext, func(t *testing.T) {
			s := newSandbox(t)
			deep := "public/" + strings.Repeat("d/", 40) + "f"
			archive := writeFile(t, filepath.Join(s.dir, "in", "app."+ext), build(t, append(goodEntries(), tEntry{name: deep, body: "x"})))
			s.refused(t, archive, small, deep, ErrTooManyFiles)
		})
	}
}

// TestWalkerCountsActualBytes feeds a file whose header claims nothing: the count of bytes read,
// not the claim, must trip the limit.
func TestWalkerCountsActualBytes(t *testing.T) {
	w := newWalker(Limits{MaxFileSize: 1000, MaxTotalSize: 5000, MaxFiles: 10}, discard{})
	err := w.add(header{raw: "liar", typ: typeFile, size: 0}, bytes.NewReader(make([]byte, 1001)))
	wantEntryError(t, err, "liar", ErrTooLarge)
	w = newWalker(Limits{MaxFileSize: 1000, MaxTotalSize: 1500, MaxFiles: 10}, discard{})
	if err := w.add(header{raw: "a", typ: typeFile}, bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Fatal(err)
	}
	err = w.add(header{raw: "b", typ: typeFile}, bytes.NewReader(make([]byte, 501)))
	wantEntryError(t, err, "b", ErrTooLarge)
	if !strings.Contains(err.Error(), "in total") {
		t.Errorf("%v does not say the total limit was hit", err)
	}
}

func TestExtractModes(t *testing.T) {
	for _, ext := range []string{ExtZip, ExtTarGz} {
		t.Run(ext, func(t *testing.T) {
			build := zipBytes
			if ext != ExtZip {
				build = tarGzBytes
			}
			entries := append(goodEntries(),
				tEntry{name: "public/suid", body: "x", mode: fs.ModeSetuid | fs.ModeSetgid | 0o777},
				tEntry{name: "public/ww", body: "x", mode: 0o666},
				tEntry{name: "public/ro", body: "x", mode: 0o400},
				tEntry{name: "public/rel", mode: fs.ModeSymlink | 0o777, link: "./sub/../ww"},
			)
			dir := t.TempDir()
			archive := writeFile(t, filepath.Join(dir, "app."+ext), build(t, entries))
			dest := filepath.Join(dir, "out", "app")
			if _, err := Extract(archive, dest, DefaultLimits()); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]fs.FileMode{"public/suid": 0o755, "public/ww": 0o644, "public/ro": 0o644, "public": fs.ModeDir | 0o755, ".": fs.ModeDir | 0o755} {
				st, err := os.Lstat(filepath.Join(dest, name))
				if err != nil || st.Mode() != want {
					t.Errorf("%s: mode %v, want %v (%v)", name, st.Mode(), want, err)
				}
			}
			if target, err := os.Readlink(filepath.Join(dest, "public", "rel")); err != nil || target != "ww" {
				t.Errorf("rel -> %q (%v), want the cleaned target ww", target, err)
			}
			checkInside(t, dest)
		})
	}
}

func TestExtractReplacesDeployment(t *testing.T) {
	s := newSandbox(t)
	entries := goodEntries()
	entries[2].body = "<h1>v2</h1>"
	archive := writeFile(t, filepath.Join(s.dir, "in", "app##2.zip"), zipBytes(t, entries))
	b, err := Extract(archive, s.dest, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if b.FileName.Version != "2" || b.Manifest.Version != "2" {
		t.Errorf("version from the file name: %+v %+v", b.FileName, b.Manifest)
	}
	if data, err := os.ReadFile(filepath.Join(s.dest, "public", "index.html")); err != nil || string(data) != "<h1>v2</h1>" {
		t.Errorf("index.html = %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(s.dest, "marker")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old deployment's marker survived: %v", err)
	}
	left, _ := os.ReadDir(filepath.Dir(s.dest))
	if len(left) != 1 || left[0].Name() != "app" {
		t.Errorf("apps dir holds %v, want only app", left)
	}
}

func TestOpenManifestChecks(t *testing.T) {
	proc := func(manifest string, extra ...tEntry) []tEntry {
		return append([]tEntry{{name: "manifest.yaml", body: manifest}}, extra...)
	}
	tests := []struct {
		name, file string
		entries    []tEntry
		field      string
		sentinel   error
	}{
		{"no manifest", "app.zip", []tEntry{{name: "public/index.html", body: "x"}}, "", ErrNoManifest},
		{"manifest not at root", "app.zip", []tEntry{{name: "sub/manifest.yaml", body: goodManifest}}, "", ErrNoManifest},
		{"name mismatch", "other.zip", goodEntries(), "name", ErrInvalidManifest},
		{"version mismatch", "app##2.zip", proc("name: app\nversion: \"3\"\n", tEntry{name: "public/x", body: "x"}), "version", ErrInvalidManifest},
		{"static dir missing", "app.zip", proc("name: app\nstatic: www\n", tEntry{name: "public/x", body: "x"}), "static", ErrInvalidManifest},
		{"static kind without public", "app.zip", proc("name: app\n", tEntry{name: "index.html", body: "x"}), "static", ErrInvalidManifest},
		{"command missing", "app.zip", proc("name: app\nkind: process\ncommand: [bin/app]\n"), "command[0]", ErrInvalidManifest},
		{"command is a dir", "app.zip", proc("name: app\nkind: process\ncommand: [bin/app]\n", tEntry{name: "bin/app/x", body: "x"}), "command[0]", ErrInvalidManifest},
		{"bad manifest", "app.zip", proc("name: app\nfoo: 1\n"), "foo", ErrInvalidManifest},
		{"not a zip", "app.zip", nil, "", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data := []byte("definitely not a zip archive")
			if tt.entries != nil {
				data = zipBytes(t, tt.entries)
			}
			archive := writeFile(t, filepath.Join(dir, tt.file), data)
			_, err := Open(archive, DefaultLimits())
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("Open: %v, want %v", err, tt.sentinel)
			}
			var me *ManifestError
			if tt.field != "" && (!errors.As(err, &me) || me.Field != tt.field) {
				t.Errorf("Open: %v, want field %q", err, tt.field)
			}
			dest := filepath.Join(dir, "out", "app")
			if _, err := Extract(archive, dest, DefaultLimits()); !errors.Is(err, tt.sentinel) {
				t.Errorf("Extract: %v, want %v", err, tt.sentinel)
			}
			if left, _ := os.ReadDir(filepath.Join(dir, "out")); len(left) != 0 {
				t.Errorf("Extract left %v", left)
			}
		})
	}
}

func TestOpenAsAndProcessDefaults(t *testing.T) {
	dir := t.TempDir()
	entries := []tEntry{
		{name: "manifest.yaml", body: "name: svc\nversion: \"5\"\nkind: process\ncommand: [./bin/svc]\n"},
		{name: "bin/svc", body: "#!/bin/sh\n", mode: 0o644}, // no exec bit, as from Windows zips
	}
	upload := writeFile(t, filepath.Join(dir, "upload-123.part"), zipBytes(t, entries))
	if _, err := Open(upload, DefaultLimits()); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("Open without a bundle name: %v", err)
	}
	b, err := OpenAs(upload, "svc.zip", DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if b.FileName.Key() != "svc##5" || b.Manifest.Static != "" || b.Manifest.Context != "/svc" {
		t.Errorf("OpenAs: %+v %+v", b.FileName, b.Manifest)
	}
	dest := filepath.Join(dir, "svc")
	if _, err := ExtractAs(upload, "svc.zip", dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dest, "bin", "svc")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("command not made executable: %v %v", st, err)
	}
}
