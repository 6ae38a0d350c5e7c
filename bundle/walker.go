package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// maxEntryNameLen caps an entry's path; maxLinkLen caps a symlink target.
const (
	maxEntryNameLen = 4096
	maxLinkLen      = 4096
)

type entryType int

const (
	typeRefused entryType = iota // h.reason says why
	typeFile
	typeDir
	typeSymlink
)

// header is one archive entry as the format readers describe it.
type header struct {
	raw      string      // name as written in the archive
	typ      entryType   // typeRefused: see reason
	reason   string      // why the entry type is refused
	perm     fs.FileMode // permission bits from the archive
	size     int64       // size the header claims (files)
	linkname string      // symlink target
}

// node is what the walker remembers about a path.
type node struct {
	typ      entryType
	explicit bool // an entry of its own, not only an ancestor of one
}

// visitor receives verified entries. Symlinks come after every file and directory.
type visitor interface {
	dir(name string) error
	// file must consume r to EOF or return an error.
	file(name string, perm fs.FileMode, r io.Reader) error
	symlink(name, target string) error
}

type link struct{ name, target string }

// walker enforces the entry rules and limits common to every format.
type walker struct {
	lim      Limits
	v        visitor
	count    int   // entries and implicit directories
	total    int64 // file bytes actually read
	index    map[string]*node
	links    []link
	manifest []byte
	sawMan   bool
}

func newWalker(lim Limits, v visitor) *walker {
	return &walker{lim: lim.withDefaults(), v: v, index: map[string]*node{}}
}

// add verifies one entry and hands it to the visitor. data is the entry's content (files only).
func (w *walker) add(h header, data io.Reader) error {
	name, err := w.admit(h)
	if err != nil || name == "" {
		return err
	}
	switch h.typ {
	case typeDir:
		if err := w.v.dir(name); err != nil {
			return fmt.Errorf("bundle entry %q: %w", h.raw, err)
		}
	case typeSymlink:
		target, err := checkLinkTarget(name, h.linkname)
		if err != nil {
			return unsafeEntry(h.raw, "%v", err)
		}
		w.links = append(w.links, link{name, target})
	case typeFile:
		return w.file(name, h, data)
	}
	return nil
}

// finish creates the symlinks and checks that a manifest was found.
func (w *walker) finish() error {
	for _, l := range w.links {
		if err := w.v.symlink(l.name, l.target); err != nil {
			return fmt.Errorf("bundle entry %q: %w", l.name, err)
		}
	}
	if !w.sawMan {
		return ErrNoManifest
	}
	return nil
}

// admit checks the name, the type, the counts and the tree, and records the entry. It returns the
// cleaned name, or "" for an entry that names the root directory itself.
func (w *walker) admit(h header) (string, error) {
	raw := h.raw
	p := raw
	if h.typ == typeDir || strings.HasSuffix(p, "/") && h.typ != typeFile {
		p = strings.TrimSuffix(p, "/")
		if p == "" {
			p = "."
		}
	}
	if len(p) > maxEntryNameLen {
		return "", unsafeEntry(raw, "name longer than %d bytes", maxEntryNameLen)
	}
	name, err := cleanRelPath(p)
	if err != nil {
		return "", unsafeEntry(raw, "%v", err)
	}
	if h.typ == typeRefused {
		return "", unsafeEntry(raw, "%s", h.reason)
	}
	if strings.HasSuffix(raw, "/") && h.typ == typeFile {
		return "", unsafeEntry(raw, "a file name ending in \"/\"")
	}
	if name == "." {
		if h.typ != typeDir {
			return "", unsafeEntry(raw, "names the bundle root")
		}
		return "", w.countOne(raw)
	}
	if h.typ == typeFile {
		if err := w.checkClaim(raw, h.size); err != nil {
			return "", err
		}
	}
	if err := w.countOne(raw); err != nil {
		return "", err
	}
	if err := w.record(raw, name, h.typ); err != nil {
		return "", err
	}
	if name == ManifestFile {
		if h.typ != typeFile {
			return "", &EntryError{Entry: raw, Reason: "manifest.yaml is not a regular file", Err: ErrNoManifest}
		}
		w.sawMan = true
	}
	return name, nil
}

func (w *walker) countOne(raw string) error {
	w.count++
	if w.count > w.lim.MaxFiles {
		return &EntryError{Entry: raw, Reason: fmt.Sprintf("more than %d entries", w.lim.MaxFiles), Err: ErrTooManyFiles}
	}
	return nil
}

// checkClaim refuses files whose header admits they are too large. Headers may lie, so file also
// counts what it reads.
func (w *walker) checkClaim(raw string, size int64) error {
	if size > w.lim.MaxFileSize {
		return &EntryError{Entry: raw, Reason: fmt.Sprintf("declares %d bytes, limit %d per file", size, w.lim.MaxFileSize), Err: ErrTooLarge}
	}
	if size > w.lim.MaxTotalSize-w.total {
		return &EntryError{Entry: raw, Reason: fmt.Sprintf("declares %d bytes, over the %d bytes limit in total", size, w.lim.MaxTotalSize), Err: ErrTooLarge}
	}
	return nil
}

// record adds name to the tree: no ancestor may be a file or a symlink (nothing is written through
// a link), and no path may appear twice. Implicit ancestors count as entries.
func (w *walker) record(raw, name string, typ entryType) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		anc := name[:i]
		n, ok := w.index[anc]
		switch {
		case !ok:
			if err := w.countOne(raw); err != nil {
				return err
			}
			w.index[anc] = &node{typ: typeDir}
		case n.typ == typeSymlink:
			return unsafeEntry(raw, "lies below the symbolic link %q", anc)
		case n.typ != typeDir:
			return unsafeEntry(raw, "lies below the file %q", anc)
		}
	}
	n, ok := w.index[name]
	switch {
	case !ok:
		w.index[name] = &node{typ: typ, explicit: true}
	case n.explicit:
		return unsafeEntry(raw, "duplicate entry")
	case typ != typeDir:
		return unsafeEntry(raw, "duplicate entry: a directory of that name has entries")
	default:
		n.explicit = true
	}
	return nil
}

// file streams one file to the visitor, counting the bytes actually decompressed.
func (w *walker) file(name string, h header, data io.Reader) error {
	limit := min(w.lim.MaxFileSize, w.lim.MaxTotalSize-w.total)
	cr := &countingReader{r: data, max: limit}
	var err error
	if name == ManifestFile {
		w.manifest, err = io.ReadAll(io.LimitReader(cr, maxManifestSize+1))
		if err == nil && len(w.manifest) > maxManifestSize {
			return &EntryError{Entry: h.raw, Reason: fmt.Sprintf("larger than %d bytes", maxManifestSize), Err: ErrTooLarge}
		}
		if err == nil {
			err = w.v.file(name, h.perm, io.MultiReader(bytes.NewReader(w.manifest), cr))
		}
	} else {
		err = w.v.file(name, h.perm, cr)
	}
	if err == nil {
		// Read what the visitor left, so the archive's checksum is verified.
		_, err = io.Copy(io.Discard, cr)
	}
	w.total += cr.n
	switch {
	case cr.tooLarge:
		which := fmt.Sprintf("%d bytes per file", w.lim.MaxFileSize)
		if limit < w.lim.MaxFileSize {
			which = fmt.Sprintf("%d bytes in total", w.lim.MaxTotalSize)
		}
		return &EntryError{Entry: h.raw, Reason: "decompresses to more than " + which, Err: ErrTooLarge}
	case cr.srcErr != nil:
		return &EntryError{Entry: h.raw, Reason: "reading data: " + cr.srcErr.Error(), Err: ErrCorrupt}
	case err != nil:
		return fmt.Errorf("bundle entry %q: %w", h.raw, err)
	}
	return nil
}

// checkLinkTarget returns the cleaned target of the symlink at name, refusing targets that are
// absolute or resolve outside the root. The cleaned form is what gets written: its ".." components
// all lead, so they climb real directories only (no entry lies below a link), and the rest
// descends through entries that are themselves checked.
func checkLinkTarget(name, target string) (string, error) {
	if err := checkPathChars(target); err != nil {
		return "", fmt.Errorf("symbolic link target: %v", err)
	}
	if len(target) > maxLinkLen {
		return "", fmt.Errorf("symbolic link target longer than %d bytes", maxLinkLen)
	}
	if strings.HasPrefix(target, "/") {
		return "", fmt.Errorf("symbolic link to the absolute path %q", target)
	}
	clean := path.Clean(target)
	resolved := path.Join(path.Dir(name), clean)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return "", fmt.Errorf("symbolic link to %q leaves the bundle", target)
	}
	return clean, nil
}

// errLimit is returned by countingReader past its limit; the walker reports ErrTooLarge.
var errLimit = errors.New("size limit reached")

// countingReader counts bytes read and stops one byte past max. Errors of the underlying reader
// are kept in srcErr so they can be told apart from the visitor's.
type countingReader struct {
	r        io.Reader
	n, max   int64
	tooLarge bool
	srcErr   error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.tooLarge {
		return 0, errLimit
	}
	if c.srcErr != nil {
		return 0, c.srcErr
	}
	if room := c.max - c.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		c.tooLarge = true
		return n - int(c.n-c.max), errLimit
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.srcErr = err
	}
	return n, err
}

// filePerm is the mode an extracted file gets: 0755 when the archive marked it executable, else 0644.
func filePerm(perm fs.FileMode) fs.FileMode {
	if perm&0o111 != 0 {
		return 0o755
	}
	return 0o644
}
