package bundle

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on. They are wrapped, so test with errors.Is.
var (
	// ErrNoManifest: the archive has no manifest.yaml at its root.
	ErrNoManifest = errors.New("bundle: no manifest.yaml at the archive root")
	// ErrUnsupportedFormat: the file name does not end in .zip, .tar.gz or .tgz.
	ErrUnsupportedFormat = errors.New("bundle: unsupported archive format (want .zip, .tar.gz or .tgz)")
	// ErrBadFileName: the file name is not <name>[##<version>].<ext>.
	ErrBadFileName = errors.New("bundle: bad file name")
	// ErrInvalidManifest: manifest.yaml does not decode or does not validate; the error is a
	// *ManifestError naming the field.
	ErrInvalidManifest = errors.New("bundle: invalid manifest")
	// ErrUnsafeEntry: an entry would write outside the bundle root or is of a refused type; the
	// error is an *EntryError naming the entry.
	ErrUnsafeEntry = errors.New("bundle: unsafe entry")
	// ErrTooLarge: an entry or the whole archive exceeds Limits.MaxFileSize or Limits.MaxTotalSize.
	ErrTooLarge = errors.New("bundle: too large")
	// ErrTooManyFiles: the archive has more entries than Limits.MaxFiles.
	ErrTooManyFiles = errors.New("bundle: too many files")
	// ErrCorrupt: the archive is not a readable zip or tar.gz, or an entry's data is damaged.
	ErrCorrupt = errors.New("bundle: corrupt archive")
	// ErrBuild: the manifest's build command failed (Pack).
	ErrBuild = errors.New("bundle: build failed")
	// ErrPlatform: a process bundle was built for another os/arch than the one asked about.
	ErrPlatform = errors.New("bundle: wrong platform")
)

// EntryError reports an archive entry that was refused. Err is one of the sentinels above
// (ErrUnsafeEntry, ErrTooLarge, ErrTooManyFiles, ErrCorrupt, ErrNoManifest).
type EntryError struct {
	Entry  string // the entry's name as written in the archive
	Reason string // what is wrong with it
	Err    error  // the sentinel it matches
}

// Error implements error.
func (e *EntryError) Error() string {
	return fmt.Sprintf("bundle entry %q: %s", e.Entry, e.Reason)
}

// Unwrap returns the sentinel, so errors.Is(err, ErrTooLarge) works.
func (e *EntryError) Unwrap() error { return e.Err }

func unsafeEntry(name, format string, args ...any) *EntryError {
	return &EntryError{Entry: name, Reason: fmt.Sprintf(format, args...), Err: ErrUnsafeEntry}
}

// ManifestError reports a manifest field that is wrong. Line is the line in manifest.yaml when known
// (0 otherwise).
type ManifestError struct {
	Field  string // yaml key, e.g. "context" or "env.PORT"
	Line   int    // 1-based line in manifest.yaml, 0 when unknown
	Reason string // what is wrong with it
}

// Error implements error.
func (e *ManifestError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("manifest.yaml line %d: %s: %s", e.Line, e.Field, e.Reason)
	}
	return fmt.Sprintf("manifest.yaml: %s: %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalidManifest.
func (e *ManifestError) Unwrap() error { return ErrInvalidManifest }

func fieldError(field, format string, args ...any) *ManifestError {
	return &ManifestError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
