package bundle

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
)

// walkArchive reads the archive at path in the format of fn and feeds every entry to w.
func walkArchive(path string, fn FileName, w *walker) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	if fn.IsTar() {
		err = walkTarGz(f, w)
	} else {
		st, serr := f.Stat()
		if serr != nil {
			return fmt.Errorf("bundle: %w", serr)
		}
		err = walkZip(f, st.Size(), w)
	}
	if err != nil {
		return err
	}
	return w.finish()
}

func walkZip(r io.ReaderAt, size int64, w *walker) error {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(zr.File) > w.lim.MaxFiles {
		return &EntryError{Entry: zr.File[w.lim.MaxFiles].Name, Reason: fmt.Sprintf("more than %d entries", w.lim.MaxFiles), Err: ErrTooManyFiles}
	}
	for _, zf := range zr.File {
		if err := walkZipEntry(zf, w); err != nil {
			return err
		}
	}
	return nil
}

func walkZipEntry(zf *zip.File, w *walker) error {
	mode := zf.Mode()
	h := header{raw: zf.Name, perm: mode.Perm()}
	if zf.UncompressedSize64 > math.MaxInt64 {
		h.size = math.MaxInt64
	} else {
		h.size = int64(zf.UncompressedSize64)
	}
	switch {
	case len(zf.Name) > 0 && zf.Name[len(zf.Name)-1] == '/' || mode.IsDir():
		h.typ = typeDir
	case zf.Flags&0x1 != 0:
		return &EntryError{Entry: zf.Name, Reason: "encrypted entries are not supported", Err: ErrUnsupportedFormat}
	case mode.Type() == 0:
		h.typ = typeFile
	case mode.Type() == fs.ModeSymlink:
		h.typ = typeSymlink
	default:
		h.typ, h.reason = typeRefused, fmt.Sprintf("refused entry type (%s)", typeName(mode.Type()))
	}
	if h.typ != typeFile && h.typ != typeSymlink {
		return w.add(h, nil)
	}
	rc, err := zf.Open()
	if err != nil {
		return &EntryError{Entry: zf.Name, Reason: err.Error(), Err: ErrCorrupt}
	}
	defer rc.Close()
	if h.typ == typeSymlink {
		target, err := io.ReadAll(io.LimitReader(rc, maxLinkLen+1))
		if err != nil {
			return &EntryError{Entry: zf.Name, Reason: "reading link target: " + err.Error(), Err: ErrCorrupt}
		}
		h.linkname = string(target)
		return w.add(h, nil)
	}
	return w.add(h, rc)
}

func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "block device"
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	}
	return "irregular file"
}

func walkTarGz(r io.Reader, w *walker) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		h := tarHeader(hdr)
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			// Metadata only, but counted so a stream of them cannot spin forever.
			if err := w.countOne(hdr.Name); err != nil {
				return err
			}
			continue
		}
		if h.typ != typeFile && hdr.Size != 0 {
			h.typ, h.reason = typeRefused, fmt.Sprintf("a non-regular entry with %d bytes of data", hdr.Size)
		}
		var data io.Reader
		if h.typ == typeFile {
			data = tr
		}
		if err := w.add(h, data); err != nil {
			return err
		}
	}
}

func tarHeader(hdr *tar.Header) header {
	h := header{raw: hdr.Name, perm: fs.FileMode(hdr.Mode).Perm(), size: hdr.Size, linkname: hdr.Linkname}
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00':
		h.typ = typeFile
	case tar.TypeDir:
		h.typ = typeDir
	case tar.TypeSymlink:
		h.typ = typeSymlink
	case tar.TypeLink:
		h.typ, h.reason = typeRefused, fmt.Sprintf("hard link to %q refused", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		h.typ, h.reason = typeRefused, "device node refused"
	case tar.TypeFifo:
		h.typ, h.reason = typeRefused, "FIFO refused"
	default:
		h.typ, h.reason = typeRefused, fmt.Sprintf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return h
}
