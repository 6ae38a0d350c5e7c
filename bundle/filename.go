package bundle

import (
	"fmt"
	"strings"
)

// Archive extensions, as they appear in FileName.Ext.
const (
	ExtZip   = "zip"
	ExtTarGz = "tar.gz"
	ExtTgz   = "tgz"
)

// VersionSep separates the name from the version in a bundle file name and a deployment key.
const VersionSep = "##"

// Length limits of names and versions.
const (
	maxNameLen    = 63
	maxVersionLen = 64
)

// FileName is a parsed bundle file name: <Name>[##<Version>].<Ext>.
type FileName struct {
	Name    string // [a-z0-9][a-z0-9._-]{0,62}
	Version string // [A-Za-z0-9._-]{1,64}, or "" when the file name has none
	Ext     string // ExtZip, ExtTarGz or ExtTgz
}

// Key is the deployment key: "name", or "name##version" when versioned.
func (f FileName) Key() string {
	if f.Version == "" {
		return f.Name
	}
	return f.Name + VersionSep + f.Version
}

// String is the file name: Key() + "." + Ext.
func (f FileName) String() string { return f.Key() + "." + f.Ext }

// IsTar reports whether the archive is a gzip-compressed tar (.tar.gz or .tgz).
func (f FileName) IsTar() bool { return f.Ext == ExtTarGz || f.Ext == ExtTgz }

// ParseFileName parses a bundle file name (a base name, no directory). Extensions are matched
// case-sensitively. Errors wrap ErrUnsupportedFormat or ErrBadFileName.
func ParseFileName(base string) (FileName, error) {
	var fn FileName
	var stem string
	switch {
	case strings.HasSuffix(base, "."+ExtTarGz):
		fn.Ext, stem = ExtTarGz, strings.TrimSuffix(base, "."+ExtTarGz)
	case strings.HasSuffix(base, "."+ExtTgz):
		fn.Ext, stem = ExtTgz, strings.TrimSuffix(base, "."+ExtTgz)
	case strings.HasSuffix(base, "."+ExtZip):
		fn.Ext, stem = ExtZip, strings.TrimSuffix(base, "."+ExtZip)
	default:
		return FileName{}, fmt.Errorf("%w: %q", ErrUnsupportedFormat, base)
	}
	name, version, versioned := strings.Cut(stem, VersionSep)
	if err := checkName(name); err != nil {
		return FileName{}, fmt.Errorf("%w %q: name %w", ErrBadFileName, base, err)
	}
	if versioned {
		if err := checkVersion(version); err != nil {
			return FileName{}, fmt.Errorf("%w %q: version %w", ErrBadFileName, base, err)
		}
	}
	fn.Name, fn.Version = name, version
	return fn, nil
}

// checkName checks an app name: [a-z0-9][a-z0-9._-]{0,62}.
func checkName(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%q is longer than %d characters", s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("%q: want lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", s)
		}
	}
	return nil
}

// checkVersion checks a version: [A-Za-z0-9._-]{1,64}, and not "." or "..".
func checkVersion(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if len(s) > maxVersionLen {
		return fmt.Errorf("%q is longer than %d characters", s, maxVersionLen)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is not a version", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%q: want letters, digits, '.', '_' or '-'", s)
		}
	}
	return nil
}
