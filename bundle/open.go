package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Info describes a verified bundle archive.
type Info struct {
	// FileName is the parsed archive name; its Version is the manifest's when the name has none.
	FileName FileName
	// Manifest is the validated manifest with defaults applied, Version reconciled with the file
	// name, and Static resolved (cleaned, "" when the bundle serves no static files).
	Manifest *Manifest
	// SHA256 is the lowercase hex digest of the archive file.
	SHA256 string
	// Size is the archive file's size in bytes.
	Size int64
	// Entries counts the archive's entries, implicit directories included.
	Entries int
	// UncompressedSize is the bytes of all files, as decompressed.
	UncompressedSize int64
}

// Bundle is an opened (and possibly extracted) bundle.
type Bundle struct {
	Info
	// Path is the archive file.
	Path string
	// Dir is the directory the bundle was extracted to; "" after Open.
	Dir string
}

// discard is the visitor of Open: it reads everything and writes nothing.
type discard struct{}

func (discard) dir(string) error { return nil }
func (discard) file(_ string, _ fs.FileMode, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discard) symlink(string, string) error { return nil }

// Open verifies the bundle at path without extracting it: the file name, every entry (by the rules
// of Extract, decompressing all data to count it) and the manifest.
func Open(path string, lim Limits) (*Bundle, error) {
	return OpenAs(path, filepath.Base(path), lim)
}

// OpenAs is Open for an archive stored under another name (an upload's temp file, say): base is
// the bundle file name that gives its name, version and format.
func OpenAs(path, base string, lim Limits) (*Bundle, error) {
	fn, err := ParseFileName(base)
	if err != nil {
		return nil, err
	}
	w := newWalker(lim, discard{})
	if err := walkArchive(path, fn, w); err != nil {
		return nil, err
	}
	return finishBundle(path, fn, w)
}

// finishBundle validates the manifest against the file name and the entries, and digests the file.
func finishBundle(path string, fn FileName, w *walker) (*Bundle, error) {
	m, err := ParseManifest(w.manifest)
	if err != nil {
		return nil, err
	}
	if err := reconcile(&fn, m); err != nil {
		return nil, err
	}
	if err := resolveContents(m, w.index); err != nil {
		return nil, err
	}
	sum, size, err := digest(path)
	if err != nil {
		return nil, err
	}
	return &Bundle{Path: path, Info: Info{FileName: fn, Manifest: m, SHA256: sum, Size: size,
		Entries: w.count, UncompressedSize: w.total}}, nil
}

// reconcile checks the manifest's name and version against the file name's; a missing version on
// either side is taken from the other.
func reconcile(fn *FileName, m *Manifest) error {
	if m.Name != fn.Name {
		return fieldError("name", "manifest says %q but the file name %q says %q", m.Name, fn.String(), fn.Name)
	}
	switch {
	case fn.Version == "":
		fn.Version = m.Version
	case m.Version == "":
		m.Version = fn.Version
	case m.Version != fn.Version:
		return fieldError("version", "manifest says %q but the file name %q says %q", m.Version, fn.String(), fn.Version)
	}
	return nil
}

// resolveContents checks the paths the manifest names against the bundle's entries and resolves
// the default static dir.
func resolveContents(m *Manifest, index map[string]*node) error {
	if m.Static != "" {
		dir, _ := cleanRelPath(m.Static) // Validate checked it
		if n, ok := index[dir]; dir != "." && !ok {
			return fieldError("static", "directory %q is not in the bundle", m.Static)
		} else if ok && n.typ != typeDir {
			return fieldError("static", "%q is not a directory in the bundle", m.Static)
		}
		m.Static = dir
	} else if n, ok := index[DefaultStaticDir]; ok && n.typ == typeDir {
		m.Static = DefaultStaticDir
	} else if m.Kind == KindStatic {
		return fieldError("static", "a static bundle needs a static dir: add %s/ or set static", DefaultStaticDir)
	}
	if m.Kind == KindProcess && strings.Contains(m.Command[0], "/") {
		p, _ := cleanRelPath(m.Command[0])
		if n, ok := index[p]; !ok || n.typ == typeDir {
			return fieldError("command[0]", "%q is not a file in the bundle", m.Command[0])
		}
	}
	return nil
}

// SHA256File returns the lowercase hex SHA-256 of the file at path.
func SHA256File(path string) (string, error) {
	sum, _, err := digest(path)
	return sum, err
}

func digest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("bundle: reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
