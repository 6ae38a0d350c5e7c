package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/herdproject/herd/bundle"
)

// runPack builds a bundle from a directory holding manifest.yaml. The manifest's build command runs
// first (for a Go app, cross-compiled for the manifest's platform).
func runPack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	out := fs.String("o", "", "output file: <name>[##<version>].zip or .tar.gz (default: from the manifest, .zip)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"need exactly one directory"}
	}
	dir := pos[0]
	if *out == "" {
		m, err := bundle.LoadManifest(dir)
		if err != nil {
			return err
		}
		name := m.Name
		if m.Version != "" {
			name += bundle.VersionSep + m.Version
		}
		*out = name + ".zip"
	}
	info, err := bundle.PackContext(ctx, dir, *out, bundle.PackOptions{Stdout: stderr, Stderr: stderr})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "packed %s: %s (%s, %d files, %d bytes, sha256 %s)\n", dir, *out,
		info.Manifest.Kind, info.Entries, info.Size, info.SHA256)
	return err
}
