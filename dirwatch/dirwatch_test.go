package dirwatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type collector struct {
	mu     sync.Mutex
	events []Event
}

func (c *collector) add(e Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

func (c *collector) snapshot() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

func (c *collector) waitFor(t *testing.T, what string, ok func([]Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ev := c.snapshot(); ok(ev) {
			return ev
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; events: %+v", what, c.snapshot())
	return nil
}

func count(evs []Event, k Kind, name string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k && e.Name == name {
			n++
		}
	}
	return n
}

// start runs a watcher on a fresh dir whose Complete check requires the file to end with "END".
func start(t *testing.T, settle time.Duration) (string, *collector) {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Options{
		Dir:    dir,
		Settle: settle,
		Rescan: 200 * time.Millisecond,
		Accept: func(name string) bool { return strings.HasSuffix(name, ".zip") },
		Complete: func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !strings.HasSuffix(string(b), "END") {
				return errors.New("no END marker")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, c.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return dir, c
}

func TestSlowCopyIsReportedOnceComplete(t *testing.T) {
	dir, c := start(t, 300*time.Millisecond)
	path := filepath.Join(dir, "app.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Write in pieces faster than the settle time: no event may come out before the last piece.
	for i := 0; i < 8; i++ {
		if _, err := f.WriteString(strings.Repeat("x", 1000)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond)
		if n := len(c.snapshot()); n != 0 {
			t.Fatalf("event during the copy (piece %d): %+v", i, c.snapshot())
		}
	}
	if _, err := f.WriteString("END"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	evs := c.waitFor(t, "ready", func(e []Event) bool { return count(e, Ready, "app.zip") == 1 })
	if evs[0].Size != 8003 {
		t.Fatalf("size %d, want 8003", evs[0].Size)
	}
}

func TestRenameIntoPlaceAndIgnoredNames(t *testing.T) {
	dir, c := start(t, 100*time.Millisecond)
	for _, n := range []string{".app.zip.swp", "app.zip~", "app.zip.part", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("junkEND"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "app.zip.tmp")
	if err := os.WriteFile(tmp, []byte("payloadEND"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "app.zip")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "ready", func(e []Event) bool { return count(e, Ready, "app.zip") == 1 })
	time.Sleep(400 * time.Millisecond) // a few rescans: the ignored names must stay ignored
	for _, e := range c.snapshot() {
		if e.Name != "app.zip" {
			t.Fatalf("event for an ignored file: %+v", e)
		}
	}
}

func TestChangeRemoveAndInvalid(t *testing.T) {
	dir, c := start(t, 100*time.Millisecond)
	path := filepath.Join(dir, "a.zip")
	if err := os.WriteFile(path, []byte("v1END"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "first ready", func(e []Event) bool { return count(e, Ready, "a.zip") == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := count(c.snapshot(), Ready, "a.zip"); n != 1 {
		t.Fatalf("an unchanged file was reported %d times", n)
	}
	if err := os.WriteFile(path, []byte("version2END"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "second ready", func(e []Event) bool { return count(e, Ready, "a.zip") == 2 })
	if err := os.WriteFile(path, []byte("broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	evs := c.waitFor(t, "invalid", func(e []Event) bool { return count(e, Invalid, "a.zip") == 1 })
	if last := evs[len(evs)-1]; last.Err == nil {
		t.Fatal("invalid event without error")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "removed", func(e []Event) bool { return count(e, Removed, "a.zip") == 1 })
}

func TestExistingFilesAtStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old.zip"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "old.zip"), past, past); err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Dir: dir, Settle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx, c.add); close(done) }()
	defer func() { cancel(); <-done }()
	// With a one-hour settle time only the "old file at start" rule can report it.
	c.waitFor(t, "old file ready", func(e []Event) bool { return count(e, Ready, "old.zip") == 1 })
}
