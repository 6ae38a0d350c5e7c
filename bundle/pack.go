package bundle

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// packTime is the modification time of every packed entry, so the same input gives the same bytes.
var packTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// PackOptions tune Pack. The zero value is ready to use.
type PackOptions struct {
	// Stdout and Stderr receive the build command's output; nil discards it (the end of stderr
	// then goes into the error when the build fails).
	Stdout, Stderr io.Writer
	// Env is added ("KEY=value") to the build command's environment, after os.Environ() and the
	// GOOS/GOARCH/CGO_ENABLED derived from the manifest's platform.
	Env []string
	// Limits bound the packed bundle, which Pack opens to verify before renaming it into place.
	Limits Limits
}

// srcEntry is one file, directory or symlink of the source dir.
type srcEntry struct {
	rel    string // slash-separated, relative to the source dir
	abs    string
	typ    entryType
	perm   fs.FileMode
	size   int64
	target string // symlinks
}

// Pack archives srcDir into outPath; see PackContext.
func Pack(srcDir, outPath string, opts PackOptions) (*Info, error) {
	return PackContext(context.Background(), srcDir, outPath, opts)
}

// PackContext reads srcDir/manifest.yaml, runs its build command (ctx cancels it), and writes a zip
// or tar.gz according to outPath's extension. Entries are sorted, times fixed and modes normalized
// (0644, 0755 for executables and directories), so the same input gives the same SHA-256. It skips
// .git, the manifest's exclude globs and outPath itself, and refuses symlinks that leave srcDir and
// special files. The archive is written to a temp file next to outPath, verified with OpenAs, and
// renamed into place.
func PackContext(ctx context.Context, srcDir, outPath string, opts PackOptions) (*Info, error) {
	base := filepath.Base(outPath)
	fn, err := ParseFileName(base)
	if err != nil {
		return nil, err
	}
	m, err := LoadManifest(srcDir)
	if err != nil {
		return nil, err
	}
	if err := reconcile(&fn, m); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if len(m.Build) > 0 {
		if err := runBuild(ctx, srcDir, m, opts); err != nil {
			return nil, err
		}
	}
	entries, err := collect(srcDir, outPath, m.Exclude)
	if err != nil {
		return nil, err
	}
	tmp, err := writeTemp(outPath, fn, entries)
	if err != nil {
		return nil, err
	}
	b, err := OpenAs(tmp, base, opts.Limits)
	if err == nil {
		err = os.Rename(tmp, outPath)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("bundle: packing %s: %w", outPath, err)
	}
	return &b.Info, nil
}

func runBuild(ctx context.Context, srcDir string, m *Manifest, opts PackOptions) error {
	name := m.Build[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		abs, err := filepath.Abs(filepath.Join(srcDir, name))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBuild, err)
		}
		name = abs
	}
	cmd := exec.CommandContext(ctx, name, m.Build[1:]...)
	cmd.Dir = srcDir
	cmd.Env = os.Environ()
	if goos, goarch, ok := strings.Cut(m.Platform, "/"); ok {
		cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	}
	cmd.Env = append(cmd.Env, opts.Env...)
	cmd.Stdout = opts.Stdout
	tail := &tailBuffer{max: 2048}
	cmd.Stderr = tail
	if opts.Stderr != nil {
		cmd.Stderr = opts.Stderr
	}
	if err := cmd.Run(); err != nil {
		msg := ""
		if s := strings.TrimSpace(string(tail.buf)); s != "" {
			msg = ": " + s
		}
		return fmt.Errorf("%w: %q: %w%s", ErrBuild, strings.Join(m.Build, " "), err, msg)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// collect lists srcDir in WalkDir order (parents first, siblings sorted).
func collect(srcDir, outPath string, exclude []string) ([]srcEntry, error) {
	// Resolve symlinks in both paths: the walk starts at the real directory, and the output file
	// is recognized however it was named.
	srcDir, err := realPath(srcDir)
	if err != nil {
		return nil, err
	}
	outDir, err := realPath(filepath.Dir(outPath))
	if err != nil {
		return nil, err
	}
	outAbs := filepath.Join(outDir, filepath.Base(outPath))
	var entries []srcEntry
	err = filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(srcDir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.Name() == ".git" || p == outAbs || rel != ManifestFile && excluded(rel, exclude) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e, err := sourceEntry(p, rel, d)
		if err != nil {
			return err
		}
		e.abs = p
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: packing %s: %w", srcDir, err)
	}
	return entries, nil
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	return abs, nil
}

func sourceEntry(p, rel string, d fs.DirEntry) (srcEntry, error) {
	e := srcEntry{rel: rel}
	switch {
	case d.IsDir():
		e.typ, e.perm = typeDir, 0o755
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return e, err
		}
		if e.target, err = checkLinkTarget(rel, filepath.ToSlash(target)); err != nil {
			return e, fmt.Errorf("%s: %w", rel, err)
		}
		e.typ, e.perm = typeSymlink, 0o777
	case d.Type().IsRegular():
		fi, err := d.Info()
		if err != nil {
			return e, err
		}
		e.typ, e.perm, e.size = typeFile, filePerm(fi.Mode().Perm()), fi.Size()
	default:
		return e, fmt.Errorf("%s: %s cannot be packed", rel, typeName(d.Type()))
	}
	if _, err := cleanRelPath(rel); err != nil {
		return e, fmt.Errorf("%s: %w", rel, err)
	}
	return e, nil
}

// excluded reports whether rel matches a glob: globs without "/" match the base name, others the
// whole path. A trailing "/" on a glob is ignored.
func excluded(rel string, globs []string) bool {
	for _, g := range globs {
		g = strings.TrimSuffix(g, "/")
		subject := path.Base(rel)
		if strings.Contains(g, "/") {
			subject = rel
		}
		if ok, _ := path.Match(g, subject); ok {
			return true
		}
	}
	return false
}

// writeTemp writes the archive to a temp file next to outPath and returns its name.
func writeTemp(outPath string, fn FileName, entries []srcEntry) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(outPath), "."+filepath.Base(outPath)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	if fn.IsTar() {
		err = writeTarGz(f, entries)
	} else {
		err = writeZip(f, entries)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("bundle: writing %s: %w", outPath, err)
	}
	return f.Name(), nil
}

func writeZip(w io.Writer, entries []srcEntry) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.rel, Method: zip.Store, Modified: packTime}
		switch e.typ {
		case typeDir:
			h.Name += "/"
			h.SetMode(fs.ModeDir | e.perm)
		case typeSymlink:
			h.SetMode(fs.ModeSymlink | e.perm)
		default:
			h.Method = zip.Deflate
			h.SetMode(e.perm)
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		switch e.typ {
		case typeSymlink:
			_, err = io.WriteString(fw, e.target)
		case typeFile:
			err = copyFile(fw, e)
		}
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

func writeTarGz(w io.Writer, entries []srcEntry) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.rel, Mode: int64(e.perm), ModTime: packTime}
		switch e.typ {
		case typeDir:
			h.Typeflag, h.Name = tar.TypeDir, e.rel+"/"
		case typeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.target
		default:
			h.Typeflag, h.Size = tar.TypeReg, e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.typ == typeFile {
			if err := copyFile(tw, e); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// copyFile copies exactly e.size bytes of the source file, failing if it changed size.
func copyFile(w io.Writer, e srcEntry) error {
	f, err := os.Open(e.abs)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size+1))
	if err == nil && n != e.size {
		err = fmt.Errorf("%s changed size while packing", e.rel)
	}
	return err
}
