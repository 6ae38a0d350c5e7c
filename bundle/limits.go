package bundle

// Limits bound what an archive may unpack to. A zero or negative field means its default.
type Limits struct {
	// MaxTotalSize caps the bytes of all files together, counted as decompressed (default 512 MiB).
	MaxTotalSize int64
	// MaxFiles caps the entries, directories created implicitly included (default 10000).
	MaxFiles int
	// MaxFileSize caps one file's bytes, counted as decompressed (default 256 MiB).
	MaxFileSize int64
}

// DefaultLimits returns 512 MiB in total, 10000 files, 256 MiB per file.
func DefaultLimits() Limits {
	return Limits{MaxTotalSize: 512 << 20, MaxFiles: 10000, MaxFileSize: 256 << 20}
}

// withDefaults replaces unset fields by their defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = d.MaxTotalSize
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	return l
}
