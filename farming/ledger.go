package farming

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
)

// Entry is one record of the cluster's desired-state ledger: which bundle should run under a
// deployment key, or (Deleted) that nothing should.
type Entry struct {
	Key     string `msgpack:"k" json:"key"`               // deployment key: "name" or "name##version"
	File    string `msgpack:"f" json:"file"`              // bundle file name, e.g. "shop##2.zip"
	Name    string `msgpack:"n" json:"name"`              // app name
	Version string `msgpack:"v" json:"version,omitempty"` // "" when unversioned
	Context string `msgpack:"c" json:"context,omitempty"` // URL path prefix from the manifest
	SHA256  string `msgpack:"h" json:"sha256,omitempty"`  // lowercase hex digest of the bundle file
	Size    int64  `msgpack:"s" json:"size,omitempty"`    // bundle file size in bytes
	Origin  string `msgpack:"o" json:"origin"`            // member that recorded the entry
	Stamp   uint64 `msgpack:"t" json:"stamp"`             // hybrid logical clock (see the package doc)
	Deleted bool   `msgpack:"d" json:"deleted,omitempty"` // tombstone: undeploy Key everywhere
	Sig     []byte `msgpack:"g" json:"sig,omitempty"`     // ed25519 signature of SignedMessage(File, SHA256)
}

// After reports whether e wins over o for the same key: the greater (Stamp, Origin, SHA256, Deleted).
func (e Entry) After(o Entry) bool { return compareEntries(e, o) > 0 }

func compareEntries(a, b Entry) int {
	if c := cmp.Compare(a.Stamp, b.Stamp); c != 0 {
		return c
	}
	if c := strings.Compare(a.Origin, b.Origin); c != 0 {
		return c
	}
	if c := strings.Compare(a.SHA256, b.SHA256); c != 0 {
		return c
	}
	switch {
	case a.Deleted == b.Deleted:
		return 0
	case a.Deleted:
		return 1
	}
	return -1
}

// Validate checks an entry (from the network or the state file) and names the first problem.
func (e Entry) Validate(maxSize int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("farming: ledger entry %q: %s", truncate(e.Key, 80), fmt.Sprintf(format, args...))
	}
	fn, err := bundle.ParseFileName(e.File)
	if err != nil {
		return bad("file: %v", err)
	}
	if e.Name != fn.Name {
		return bad("name %q does not match the file name %q", truncate(e.Name, 80), e.File)
	}
	switch {
	case fn.Version != "" && e.Version != fn.Version:
		return bad("version %q does not match the file name %q", truncate(e.Version, 80), e.File)
	case fn.Version == "" && e.Version != "":
		if _, err := bundle.ParseFileName(e.Name + bundle.VersionSep + e.Version + ".zip"); err != nil {
			return bad("version: %v", err)
		}
	}
	want := e.Name
	if e.Version != "" {
		want += bundle.VersionSep + e.Version
	}
	if e.Key != want {
		return bad("key does not match name and version (want %q)", want)
	}
	if !membership.ValidName(e.Origin) {
		return bad("origin %q is not a member name", truncate(e.Origin, 80))
	}
	if e.Stamp == 0 {
		return bad("stamp is zero")
	}
	if len(e.Sig) != 0 && len(e.Sig) != ed25519.SignatureSize {
		return bad("signature is %d bytes, want %d", len(e.Sig), ed25519.SignatureSize)
	}
	if e.Deleted && e.SHA256 == "" {
		return nil
	}
	if !isSHA256(e.SHA256) {
		return bad("sha256 %q is not 64 lowercase hex digits", truncate(e.SHA256, 80))
	}
	if e.Size < 0 || e.Size > maxSize {
		return bad("size %d is outside 0..%d", e.Size, maxSize)
	}
	if !e.Deleted {
		if err := checkContextPath(e.Context); err != nil {
			return bad("context: %v", err)
		}
	}
	return nil
}

func checkContextPath(c string) error {
	switch {
	case c == "" || c[0] != '/':
		return fmt.Errorf("%q must start with /", truncate(c, 80))
	case len(c) > membership.MaxContextLen:
		return fmt.Errorf("is %d bytes, more than %d", len(c), membership.MaxContextLen)
	case !utf8.ValidString(c):
		return errors.New("is not valid UTF-8")
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", c)
		}
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ledger is the set of entries by key, with the local clock. It is not safe for concurrent use;
// the Manager guards it.
type ledger struct {
	entries map[string]Entry
	clock   uint64 // the largest stamp seen
}

func newLedger() *ledger { return &ledger{entries: map[string]Entry{}} }

// merge adds the entries that win over what the ledger holds and returns them (nil: no change).
func (l *ledger) merge(in []Entry) []Entry {
	var changed []Entry
	for _, e := range in {
		l.clock = max(l.clock, e.Stamp)
		cur, ok := l.entries[e.Key]
		if ok && !e.After(cur) {
			continue
		}
		l.entries[e.Key] = e
		changed = append(changed, e)
	}
	return changed
}

// stamp returns a fresh stamp for a local change: above every stamp seen, and at least nowMillis.
func (l *ledger) stamp(nowMillis int64) uint64 {
	s := l.clock + 1
	if nowMillis > 0 && uint64(nowMillis) > s {
		s = uint64(nowMillis)
	}
	l.clock = s
	return s
}

// list returns the entries sorted by key.
func (l *ledger) list() []Entry {
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// digest summarises the ledger for the membership record: "<entries>:<hash prefix>". Two ledgers
// with the same digest hold the same winning entries.
func (l *ledger) digest() string {
	h := sha256.New()
	for _, e := range l.list() {
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00%t\n", e.Key, e.Stamp, e.Origin, e.SHA256, e.Deleted)
	}
	return strconv.Itoa(len(l.entries)) + ":" + hex.EncodeToString(h.Sum(nil)[:12])
}

// trim forgets the oldest tombstones while the ledger holds more than max entries.
func (l *ledger) trim(max int) {
	if len(l.entries) <= max {
		return
	}
	var tombs []Entry
	for _, e := range l.entries {
		if e.Deleted {
			tombs = append(tombs, e)
		}
	}
	slices.SortFunc(tombs, compareEntries)
	for _, e := range tombs {
		if len(l.entries) <= max {
			return
		}
		delete(l.entries, e.Key)
	}
}

func (l *ledger) live() int {
	n := 0
	for _, e := range l.entries {
		if !e.Deleted {
			n++
		}
	}
	return n
}

// ledgerMsg is the body of ledger pulls and pushes.
type ledgerMsg struct {
	Entries []Entry `msgpack:"e"`
}

func encodeEntries(es []Entry) ([]byte, error) {
	return channel.Encode(ledgerMsg{Entries: es})
}

// decodeEntries decodes and validates a ledger body from a peer. Duplicated keys are fine (the
// merge keeps the winner); more than maxEntries entries are refused.
func decodeEntries(b []byte, maxEntries int, maxSize int64) ([]Entry, error) {
	var m ledgerMsg
	if err := channel.Decode(b, &m); err != nil {
		return nil, fmt.Errorf("farming: ledger: %w", err)
	}
	if len(m.Entries) > maxEntries {
		return nil, fmt.Errorf("farming: ledger: %d entries, at most %d accepted", len(m.Entries), maxEntries)
	}
	for _, e := range m.Entries {
		if err := e.Validate(maxSize); err != nil {
			return nil, err
		}
	}
	return m.Entries, nil
}
