package farming

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// store keeps the bundles this member holds, one directory per sha256 ("store/<sha>/<file>"), so a
// bundle is found by digest and keeps its file name for the Deployer. Files arrive through
// "incoming/" and are renamed into place only once their digest matched.
type store struct {
	root     string // TempDir
	maxSize  int64
	incoming string
	bundles  string
}

func newStore(root string, maxSize int64) (*store, error) {
	s := &store{root: root, maxSize: maxSize, incoming: filepath.Join(root, "incoming"), bundles: filepath.Join(root, "store")}
	for _, d := range []string{s.incoming, s.bundles} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("farming: %w", err)
		}
	}
	// Transfers cut by a crash leave temp files: nothing there is ever resumed.
	if ents, err := os.ReadDir(s.incoming); err == nil {
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(s.incoming, e.Name()))
		}
	}
	return s, nil
}

// path is where the bundle with digest sum and file name file is kept.
func (s *store) path(sum, file string) string {
	return filepath.Join(s.bundles, sum, file)
}

// has reports whether the bundle is stored with the expected size.
func (s *store) has(sum, file string, size int64) bool {
	fi, err := os.Stat(s.path(sum, file))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// tempFile creates a file in incoming/.
func (s *store) tempFile(prefix string) (*os.File, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return os.OpenFile(filepath.Join(s.incoming, prefix+"."+hex.EncodeToString(b[:])+".part"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}

// ErrDigestMismatch marks bytes whose sha256 is not the one expected.
var ErrDigestMismatch = errors.New("sha256 mismatch")

// ErrTooLarge marks a bundle larger than the limit or than announced.
var ErrTooLarge = errors.New("bundle too large")

// put copies r (at most size bytes, exactly size when size >= 0) into the store under sum/file,
// checking the digest; progress, when set, is called with the bytes written so far. Nothing is left
// behind on failure.
func (s *store) put(r io.Reader, sum, file string, size int64, progress func(int64)) (err error) {
	if size > s.maxSize {
		return fmt.Errorf("%w: %d bytes, at most %d accepted", ErrTooLarge, size, s.maxSize)
	}
	f, err := s.tempFile(sum[:16])
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	limit := s.maxSize
	if size >= 0 {
		limit = size
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			if n+int64(k) > limit {
				return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
			}
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if size >= 0 && n != size {
		return fmt.Errorf("truncated: %d of %d bytes", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, got, sum)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir := filepath.Join(s.bundles, sum)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, file))
}

// importFile copies the file at src into the store, checking it still has digest sum.
func (s *store) importFile(src, sum, file string) error {
	if s.has(sum, file, -1) {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.put(f, sum, file, -1, nil)
}

// remove deletes the bundles whose digest is not in keep.
func (s *store) gc(keep map[string]bool) {
	ents, err := os.ReadDir(s.bundles)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			_ = os.RemoveAll(filepath.Join(s.bundles, e.Name()))
		}
	}
}

// incomingFiles lists what is in incoming/ (tests check nothing is left behind).
func (s *store) incomingFiles() []string {
	ents, _ := os.ReadDir(s.incoming)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// watchRec remembers a bundle this member farmed from its watch directory.
type watchRec struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

// state is what survives a restart: the ledger and the watch directory's farmed files.
type state struct {
	Version int                 `json:"version"`
	Entries []Entry             `json:"entries"`
	Watch   map[string]watchRec `json:"watch,omitempty"`
}

const stateFile = "ledger.json"

// loadState reads the persisted state; a missing file is an empty state. Entries that fail
// validation are dropped (and reported), never trusted.
func loadState(dir string, maxSize int64, maxEntries int) (state, []error, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return state{}, nil, nil
	}
	if err != nil {
		return state{}, nil, fmt.Errorf("farming: read state: %w", err)
	}
	return decodeState(b, maxSize, maxEntries)
}

func decodeState(b []byte, maxSize int64, maxEntries int) (state, []error, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, nil, fmt.Errorf("farming: state file %s: %w", stateFile, err)
	}
	if st.Version != 1 {
		return state{}, nil, fmt.Errorf("farming: state file %s: version %d, want 1", stateFile, st.Version)
	}
	var bad []error
	good := st.Entries[:0]
	for _, e := range st.Entries {
		if err := e.Validate(maxSize); err != nil {
			bad = append(bad, err)
			continue
		}
		good = append(good, e)
	}
	if len(good) > maxEntries {
		good = good[:maxEntries]
	}
	st.Entries = good
	for name, w := range st.Watch {
		if strings.ContainsAny(name, `/\`) || !isSHA256(w.SHA256) {
			delete(st.Watch, name)
		}
	}
	return st, bad, nil
}

// saveState writes the state atomically (temp file, fsync, rename).
func saveState(dir string, st state) error {
	st.Version = 1
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}
