package bundle

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// benchArchive is a bundle of 200 files of 8 KiB (1.6 MiB).
func benchArchive(b *testing.B, ext string) string {
	b.Helper()
	entries := goodEntries()
	for i := range 200 {
		entries = append(entries, tEntry{name: fmt.Sprintf("public/d%d/f%d.txt", i%10, i), body: strings.Repeat(fmt.Sprintf("line %06d\n", i), 1024)[:8192]})
	}
	build := zipBytes
	if ext != ExtZip {
		build = tarGzBytes
	}
	return writeFile(b, filepath.Join(b.TempDir(), "app."+ext), build(b, entries))
}

func BenchmarkOpen(b *testing.B) {
	for _, ext := range []string{ExtZip, ExtTarGz} {
		b.Run(ext, func(b *testing.B) {
			archive := benchArchive(b, ext)
			b.SetBytes(200 * 8192)
			for b.Loop() {
				if _, err := Open(archive, DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkExtract(b *testing.B) {
	for _, ext := range []string{ExtZip, ExtTarGz} {
		b.Run(ext, func(b *testing.B) {
			archive := benchArchive(b, ext)
			dest := filepath.Join(b.TempDir(), "app")
			b.SetBytes(200 * 8192)
			for b.Loop() {
				if _, err := Extract(archive, dest, DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
