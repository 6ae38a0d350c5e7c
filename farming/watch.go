package farming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/dirwatch"
)

// openRecord keeps the bundle.Open result of the dirwatch Complete check, so the Ready event that
// follows does not read the archive a second time.
type openRecord struct {
	size  int64
	mtime time.Time
	info  bundle.Info
}

// isSigName reports whether name is "<bundle file name>.sig".
func isSigName(name string) bool {
	b, ok := strings.CutSuffix(name, SigSuffix)
	if !ok {
		return false
	}
	_, err := bundle.ParseFileName(b)
	return err == nil
}

func (m *Manager) newWatcher() (*dirwatch.Watcher, error) {
	return dirwatch.New(dirwatch.Options{
		Dir:    m.cfg.WatchDir,
		Settle: m.cfg.Settle,
		Accept: func(name string) bool {
			if isSigName(name) {
				return true
			}
			_, err := bundle.ParseFileName(name)
			return err == nil
		},
		Complete: m.completeCheck,
		Scanned:  m.afterInitialScan,
		Logger:   m.log,
	})
}

// completeCheck is dirwatch's Complete check: a bundle must open and validate (the checks of a
// local deploy) and be within MaxBundleSize.
func (m *Manager) completeCheck(path string) error {
	if isSigName(filepath.Base(path)) {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() > m.cfg.MaxBundleSize {
		return fmt.Errorf("%w: %d bytes, at most %d accepted", ErrTooLarge, fi.Size(), m.cfg.MaxBundleSize)
	}
	b, err := bundle.Open(path, m.cfg.Limits)
	if err != nil {
		return err
	}
	m.openMemo[path] = openRecord{size: fi.Size(), mtime: fi.ModTime(), info: b.Info}
	return nil
}

// openBundle returns the validated info of the bundle at path, from the Complete check when the
// file has not changed since.
func (m *Manager) openBundle(path string) (bundle.Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return bundle.Info{}, err
	}
	if r, ok := m.openMemo[path]; ok {
		delete(m.openMemo, path)
		if r.size == fi.Size() && r.mtime.Equal(fi.ModTime()) {
			return r.info, nil
		}
	}
	if fi.Size() > m.cfg.MaxBundleSize {
		return bundle.Info{}, fmt.Errorf("%w: %d bytes, at most %d accepted", ErrTooLarge, fi.Size(), m.cfg.MaxBundleSize)
	}
	b, err := bundle.Open(path, m.cfg.Limits)
	if err != nil {
		return bundle.Info{}, err
	}
	return b.Info, nil
}

// onWatchEvent handles the watch directory's events, one at a time on the watcher's goroutine.
func (m *Manager) onWatchEvent(ev dirwatch.Event) {
	if isSigName(ev.Name) {
		if ev.Kind == dirwatch.Ready { // a signature that arrives after its bundle
			b := strings.TrimSuffix(ev.Path, SigSuffix)
			if _, err := os.Stat(b); err == nil {
				m.dropped(b)
			}
		}
		return
	}
	switch ev.Kind {
	case dirwatch.Ready:
		m.dropped(ev.Path)
	case dirwatch.Removed:
		m.removed(ev.Name)
	case dirwatch.Invalid:
		delete(m.openMemo, ev.Path)
		m.refuse(ev.Name, ev.Err)
	}
}

// refuse logs and records why a dropped bundle is not farmed.
func (m *Manager) refuse(name string, err error) {
	m.log.Error("bundle not farmed", "event", "farm.bundle_refused", "bundle", name, "err", err)
	m.mu.Lock()
	m.errs["watch:"+name] = err.Error()
	m.mu.Unlock()
}

// dropped farms a complete bundle of the watch directory: validate, check the signature, store,
// deploy here, then record it in the ledger and tell the peers.
func (m *Manager) dropped(path string) {
	name := filepath.Base(path)
	info, err := m.openBundle(path)
	if err != nil {
		m.refuse(name, err)
		return
	}
	sig, err := readSigFile(path)
	if err != nil {
		m.refuse(name, err)
		return
	}
	sum, key := info.SHA256, info.FileName.Key()
	if err := checkSignature(m.cfg.Signing, name, sum, sig); err != nil {
		m.refuse(name, err)
		return
	}
	m.mu.Lock()
	rec, had := m.watch[name]
	cur, hasCur := m.led.entries[key]
	live := m.led.live()
	m.mu.Unlock()
	sameSig := len(sig) == 0 || bytes.Equal(cur.Sig, sig)
	if had && rec.SHA256 == sum && rec.Key == key && sameSig {
		m.log.Debug("bundle unchanged", "bundle", name, "sha256", short(sum))
		return // the same bytes again: nothing to do
	}
	if hasCur && !cur.Deleted && cur.SHA256 == sum && cur.File == name && sameSig {
		// The cluster already runs these bytes (dropped elsewhere too): remember the file only.
		m.mu.Lock()
		m.watch[name] = watchRec{Key: key, SHA256: sum}
		m.mu.Unlock()
		_ = m.save()
		m.kickReconcile()
		return
	}
	if (!hasCur || cur.Deleted) && live >= m.cfg.MaxEntries {
		m.refuse(name, fmt.Errorf("the ledger already holds %d live bundles, the most allowed", live))
		return
	}
	m.mu.Lock()
	m.keep[sum]++ // until the entry is in the ledger, so a concurrent store gc leaves it alone
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.keep[sum]--; m.keep[sum] <= 0 {
			delete(m.keep, sum)
		}
		m.mu.Unlock()
	}()
	if err := m.store.importFile(path, sum, name); err != nil {
		m.refuse(name, fmt.Errorf("copy into the farm store: %w", err))
		return
	}
	e := Entry{Key: key, File: name, Name: info.FileName.Name, Version: info.FileName.Version,
		Context: info.Manifest.Context, SHA256: sum, Size: info.Size, Origin: m.cfg.Name, Sig: sig}
	if err := m.deployLocal(e); err != nil {
		m.refuse(name, fmt.Errorf("not deployed here, so not farmed: %w", err))
		return
	}
	m.mu.Lock()
	e.Stamp = m.led.stamp(m.cfg.Now().UnixMilli())
	changed := m.led.merge([]Entry{e})
	if had && rec.Key != key { // the file now holds another version: the old key goes
		if old, ok := m.led.entries[rec.Key]; ok && !old.Deleted && old.SHA256 == rec.SHA256 {
			changed = append(changed, m.tombstoneLocked(old)...)
		}
	}
	m.watch[name] = watchRec{Key: key, SHA256: sum}
	delete(m.errs, "watch:"+name)
	m.mu.Unlock()
	m.log.Info("bundle farmed", "event", "farm.dropped", "bundle", name, "key", key, "sha256", short(sum),
		"bytes", info.Size, "stamp", e.Stamp, "peers", len(m.peers()))
	m.changed(changed)
}

// deployLocal deploys a dropped bundle here before it is farmed.
func (m *Manager) deployLocal(e Entry) error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	if err := m.dep.DeployBundle(context.WithoutCancel(m.ctx), m.store.path(e.SHA256, e.File)); err != nil {
		return err
	}
	m.setFarmed(e.Key, e.SHA256)
	m.clearFailure(e.Key)
	return nil
}

// tombstoneLocked records the removal of e's key; m.mu is held.
func (m *Manager) tombstoneLocked(e Entry) []Entry {
	t := Entry{Key: e.Key, File: e.File, Name: e.Name, Version: e.Version, Context: e.Context, SHA256: e.SHA256,
		Size: e.Size, Origin: m.cfg.Name, Stamp: m.led.stamp(m.cfg.Now().UnixMilli()), Deleted: true}
	return m.led.merge([]Entry{t})
}

// removed undeploys cluster-wide a bundle whose file left the watch directory, unless the key was
// taken over since by other bytes.
func (m *Manager) removed(name string) {
	m.mu.Lock()
	rec, had := m.watch[name]
	if !had {
		m.mu.Unlock()
		return
	}
	delete(m.watch, name)
	delete(m.errs, "watch:"+name)
	var changed []Entry
	if cur, ok := m.led.entries[rec.Key]; ok && !cur.Deleted && cur.SHA256 == rec.SHA256 {
		changed = m.tombstoneLocked(cur)
	}
	m.mu.Unlock()
	m.log.Info("bundle removed from the farm", "event", "farm.removed", "bundle", name, "key", rec.Key,
		"tombstone", len(changed) > 0)
	m.changed(changed)
}

// afterInitialScan tombstones the bundles farmed from the watch directory that were removed while
// this member was down.
func (m *Manager) afterInitialScan() {
	m.mu.Lock()
	var gone []string
	for name := range m.watch {
		if _, err := os.Lstat(filepath.Join(m.cfg.WatchDir, name)); errors.Is(err, os.ErrNotExist) {
			gone = append(gone, name)
		}
	}
	m.mu.Unlock()
	for _, name := range gone {
		m.removed(name)
	}
}
