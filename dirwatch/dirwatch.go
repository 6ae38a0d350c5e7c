// Package dirwatch watches a directory for bundle files and reports each one once it is complete, and
// again when it changes or disappears. Both the node's deploy directory and the farm's watch directory
// use it.
//
// "Complete" is what makes this harder than an fsnotify loop: `cp big.zip deploy/` creates the file
// and then writes it for seconds, an editor writes `.name.swp` or `name~` beside it, and a careful
// operator copies to a temp name and renames into place. A file is reported Ready only when its size and
// modification time have not moved for the settle time and the Complete check (for bundles: the archive
// opens and its manifest validates) passes. fsnotify events only say "look again soon"; a periodic
// rescan catches anything the kernel's event queue dropped.
package dirwatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Kind says what happened to a file.
type Kind int

const (
	// Ready means the file is complete: new, or changed since it was last reported.
	Ready Kind = iota + 1
	// Removed means a file reported Ready earlier is gone.
	Removed
	// Invalid means a still file failed the Complete check; Err says why. It is checked again when it
	// changes.
	Invalid
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case Ready:
		return "ready"
	case Removed:
		return "removed"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// Event is one report about one file of the directory.
type Event struct {
	Kind    Kind
	Name    string // base name
	Path    string // Dir joined with Name
	Size    int64
	ModTime time.Time
	Err     error // with Invalid
}

// Options configures a Watcher.
type Options struct {
	// Dir is the directory watched; it is created if missing.
	Dir string
	// Settle is how long a file's size and mtime must stay still before it is considered written.
	// Default 1s.
	Settle time.Duration
	// Rescan is how often the whole directory is listed again, in case events were lost. Default 5s.
	Rescan time.Duration
	// Accept reports whether a file name is of interest. Hidden files, editor backups (`~`, `.swp`) and
	// temp names (`.tmp`, `.part`, `.partial`, `.crdownload`) are never accepted. Nil accepts the rest.
	Accept func(name string) bool
	// Complete checks that a still file is really whole (for bundles: the archive opens). A file that
	// fails it is reported Invalid once, and checked again when its size or mtime moves (a stalled copy
	// that resumes). Nil means no check.
	Complete func(path string) error
	// Scanned, when set, is called once the files present at start were handled (their Ready events
	// returned), so the owner can report readiness. Files still being written at start come later.
	Scanned func()
	// Logger receives the watcher's log; nil discards it.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

type fileState struct {
	size      int64
	mtime     time.Time
	stillFrom time.Time // when size and mtime were first seen at their current values
	reported  bool      // a Ready or Invalid for exactly size/mtime was sent
	everReady bool      // a Ready was ever sent for this name (so a removal is reported)
	assumed   bool      // stillFrom was assumed by the initial scan, not observed
}

// Watcher reports complete bundle files of one directory. Create it with New and run it with Run.
type Watcher struct {
	opts  Options
	log   *slog.Logger
	files map[string]*fileState
}

// New checks the options and creates the directory if needed.
func New(opts Options) (*Watcher, error) {
	if opts.Dir == "" {
		return nil, errors.New("dirwatch: Dir is empty")
	}
	if opts.Settle <= 0 {
		opts.Settle = time.Second
	}
	if opts.Rescan <= 0 {
		opts.Rescan = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dirwatch: create %s: %w", opts.Dir, err)
	}
	return &Watcher{opts: opts, log: log, files: map[string]*fileState{}}, nil
}

// Ignored reports whether a name is one the watcher never accepts: hidden files, editor backups and
// partial downloads.
func Ignored(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || strings.HasPrefix(name, "#") {
		return true
	}
	lower := strings.ToLower(name)
	for _, suf := range []string{".tmp", ".temp", ".part", ".partial", ".crdownload", ".swp", ".swx", ".bak"} {
		if strings.HasSuffix(lower, suf) {
			return true
		}
	}
	return false
}

// Run watches until ctx is done, calling fn for each event from its own goroutine (one at a time, in
// order; fn may block, which delays later events but loses none). Files already present when Run
// starts are reported as soon as they are still.
func (w *Watcher) Run(ctx context.Context, fn func(Event)) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("dirwatch: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(w.opts.Dir); err != nil {
		return fmt.Errorf("dirwatch: watch %s: %w", w.opts.Dir, err)
	}
	tick := time.NewTicker(w.tickEvery())
	defer tick.Stop()
	rescan := time.NewTicker(w.opts.Rescan)
	defer rescan.Stop()
	w.scan(fn, true)
	if w.opts.Scanned != nil {
		w.opts.Scanned()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("dirwatch: event stream closed")
			}
			name := filepath.Base(ev.Name)
			if w.accepted(name) {
				w.check(name, fn)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("dirwatch: error stream closed")
			}
			// An overflow loses events; the rescan below repairs that.
			w.log.Warn("directory watch error", "event", "dirwatch.error", "dir", w.opts.Dir, "err", err)
			w.scan(fn, false)
		case <-tick.C:
			w.tick(fn)
		case <-rescan.C:
			w.scan(fn, false)
		}
	}
}

func (w *Watcher) tickEvery() time.Duration {
	d := w.opts.Settle / 4
	if d < 20*time.Millisecond {
		d = 20 * time.Millisecond
	}
	return d
}

func (w *Watcher) accepted(name string) bool {
	if Ignored(name) {
		return false
	}
	return w.opts.Accept == nil || w.opts.Accept(name)
}

// scan lists the directory: new names are checked, vanished ones reported removed.
func (w *Watcher) scan(fn func(Event), initial bool) {
	entries, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		w.log.Warn("cannot list directory", "event", "dirwatch.error", "dir", w.opts.Dir, "err", err)
		return
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !w.accepted(e.Name()) {
			continue
		}
		seen[e.Name()] = true
		w.observe(e.Name(), initial)
	}
	for name := range w.files {
		if !seen[name] {
			w.check(name, fn)
		}
	}
	w.tick(fn)
}

// check looks at one file right away (after an fsnotify event or a scan miss).
func (w *Watcher) check(name string, fn func(Event)) {
	if _, err := os.Lstat(filepath.Join(w.opts.Dir, name)); errors.Is(err, fs.ErrNotExist) {
		if st, ok := w.files[name]; ok {
			delete(w.files, name)
			if st.everReady {
				fn(Event{Kind: Removed, Name: name, Path: filepath.Join(w.opts.Dir, name)})
			}
		}
		return
	}
	w.observe(name, false)
}

// observe records a file's size and mtime, restarting its settle time when they moved. On the initial
// scan every file counts as still already (the node was not watching while it was written): the
// Complete check alone decides, so a node that starts serves its bundles at once, and one caught
// half-copied fails the check and waits for its writes to settle like any other.
func (w *Watcher) observe(name string, initial bool) {
	fi, err := os.Lstat(filepath.Join(w.opts.Dir, name))
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	now := w.opts.Now()
	st, ok := w.files[name]
	if !ok {
		st = &fileState{size: -1}
		w.files[name] = st
	}
	if st.size != fi.Size() || !st.mtime.Equal(fi.ModTime()) {
		st.size, st.mtime, st.stillFrom, st.reported = fi.Size(), fi.ModTime(), now, false
		st.assumed = initial
		if initial {
			st.stillFrom = now.Add(-w.opts.Settle)
		}
	}
}

// tick reports the files that have been still for the settle time and pass the Complete check.
func (w *Watcher) tick(fn func(Event)) {
	now := w.opts.Now()
	for name, st := range w.files {
		if st.reported {
			continue
		}
		if _, err := os.Lstat(filepath.Join(w.opts.Dir, name)); err != nil {
			w.check(name, fn) // gone: forget it (and report it if it was ever ready)
			continue
		}
		w.observe(name, false) // catches writes that raised no event yet
		if st.reported || now.Sub(st.stillFrom) < w.opts.Settle {
			continue
		}
		path := filepath.Join(w.opts.Dir, name)
		if w.opts.Complete != nil {
			if err := w.opts.Complete(path); err != nil {
				if st.assumed { // maybe still being written: wait for it to settle before judging
					st.assumed, st.stillFrom = false, now
					continue
				}
				st.reported = true
				fn(Event{Kind: Invalid, Name: name, Path: path, Size: st.size, ModTime: st.mtime, Err: err})
				continue
			}
		}
		st.reported, st.everReady = true, true
		fn(Event{Kind: Ready, Name: name, Path: path, Size: st.size, ModTime: st.mtime})
	}
}
