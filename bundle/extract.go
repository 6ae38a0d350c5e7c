package bundle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// disk is the visitor of Extract: it writes inside root (an os.Root, so even a bug in the checks
// could not write outside it). Files are created exclusively, never through a link.
type disk struct{ root *os.Root }

func (d disk) dir(name string) error {
	return d.root.MkdirAll(filepath.FromSlash(name), 0o755)
}

func (d disk) file(name string, perm fs.FileMode, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := d.root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
			return err
		}
	}
	mode := filePerm(perm)
	f, err := d.root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(mode) // the umask may have masked bits off
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d disk) symlink(name, target string) error {
	if dir := path.Dir(name); dir != "." {
		if err := d.root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
			return err
		}
	}
	return d.root.Symlink(filepath.FromSlash(target), filepath.FromSlash(name))
}

// Extract verifies the bundle at path and extracts it to destDir. It writes into a fresh directory
// next to destDir and renames it into place only when the whole bundle proved valid; on any error
// that directory is removed and destDir is left as it was. An existing destDir is replaced: moved
// aside, the new one renamed in, the old one removed. The command file of a process bundle is made
// executable.
func Extract(path, destDir string, lim Limits) (*Bundle, error) {
	return ExtractAs(path, filepath.Base(path), destDir, lim)
}

// ExtractAs is Extract for an archive stored under another name: base is the bundle file name that
// gives its name, version and format.
func ExtractAs(path, base, destDir string, lim Limits) (*Bundle, error) {
	fn, err := ParseFileName(base)
	if err != nil {
		return nil, err
	}
	destDir = filepath.Clean(destDir)
	parent, leaf := filepath.Split(destDir)
	if leaf == "" || leaf == "." || leaf == ".." {
		return nil, fmt.Errorf("bundle: destination %q is not a directory name", destDir)
	}
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+leaf+".new-*")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b, err := extractInto(path, fn, tmp, lim)
	if err == nil {
		err = replaceDir(tmp, destDir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	b.Dir = destDir
	return b, nil
}

func extractInto(path string, fn FileName, tmp string, lim Limits) (*Bundle, error) {
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer root.Close()
	if err := root.Chmod(".", 0o755); err != nil { // MkdirTemp made it 0700
		return nil, fmt.Errorf("bundle: %w", err)
	}
	w := newWalker(lim, disk{root})
	if err := walkArchive(path, fn, w); err != nil {
		return nil, err
	}
	b, err := finishBundle(path, fn, w)
	if err != nil {
		return nil, err
	}
	m := b.Manifest
	if m.Kind == KindProcess && strings.Contains(m.Command[0], "/") {
		p, _ := cleanRelPath(m.Command[0])
		if n := w.index[p]; n != nil && n.typ == typeFile {
			if err := root.Chmod(filepath.FromSlash(p), 0o755); err != nil {
				return nil, fmt.Errorf("bundle: %w", err)
			}
		}
	}
	return b, nil
}

// replaceDir renames newDir to destDir, first moving an existing destDir aside (and back should
// the second rename fail), then removing the old one (best effort).
func replaceDir(newDir, destDir string) error {
	old := ""
	if _, err := os.Lstat(destDir); err == nil {
		aside, err := os.MkdirTemp(filepath.Dir(destDir), "."+filepath.Base(destDir)+".old-*")
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := os.Remove(aside); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := os.Rename(destDir, aside); err != nil {
			return fmt.Errorf("bundle: moving the old deployment aside: %w", err)
		}
		old = aside
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.Rename(newDir, destDir); err != nil {
		if old != "" {
			_ = os.Rename(old, destDir)
		}
		return fmt.Errorf("bundle: renaming into place: %w", err)
	}
	if old != "" {
		// The new deployment is in place; a leftover old copy is not worth failing for.
		_ = os.RemoveAll(old)
	}
	return nil
}
