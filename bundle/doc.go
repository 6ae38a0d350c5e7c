// Package bundle is herd's bundle format: the manifest, packing a source directory into an archive,
// opening and verifying an archive, safe extraction, and digests.
//
// A bundle is a .zip, .tar.gz or .tgz archive named <name>[##<version>].<ext> with manifest.yaml at its
// root. Open verifies every entry without writing anything; Extract writes the bundle into a fresh
// directory next to the destination and renames it into place only when the whole archive proved
// valid, so a bad bundle never replaces a good deployment.
//
// Extraction refuses, with an *EntryError naming the entry: paths that are absolute or contain ".."
// components, backslashes, drive letters or NUL bytes; hard links, devices, FIFOs and sockets;
// duplicate entries; symbolic links that are absolute or resolve outside the bundle root; entries
// below a symbolic link (nothing is ever written through a link); and archives that exceed the
// Limits in files, bytes per file or total bytes, counted as the bytes actually decompressed rather
// than the sizes the headers claim. Extracted files get mode 0644, or 0755 when the archive marked
// them executable; directories get 0755; setuid, setgid, sticky and world-writable bits never
// survive.
package bundle
