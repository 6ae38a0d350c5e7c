//go:build linux

package farming

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFullDiskDuringTransfer gives node3 a 2 MiB tmpfs as its farm dir and farms a 4 MiB bundle: node3's
// transfer fails with a clear "no space left" error, leaves no partial file, and node3 keeps serving
// what it already ran; the other members run the new bundle.
func TestFullDiskDuringTransfer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	small := filepath.Join(t.TempDir(), "small")
	must(t, os.MkdirAll(small, 0o755))
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(small, syscall.MNT_DETACH) })
	c := newCluster(t, 3, func(name string, cfg *Config) {
		if name == "node3" {
			cfg.TempDir = filepath.Join(small, "farm")
		}
	})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	n1.drop(makeBundle(t, t.TempDir(), "tiny.zip", "tiny app", 0))
	waitServing(t, 15*time.Second, "/tiny/", "tiny app", n1, n2, n3)

	n1.drop(makeBundle(t, t.TempDir(), "big.zip", "big app", 4<<20))
	waitServing(t, 20*time.Second, "/big/", "big app", n1, n2)
	waitFor(t, 20*time.Second, "node3 to report the full disk", func() bool {
		for _, tr := range n3.farm.Stats().Transfers {
			if strings.Contains(tr.Err, "no space left") {
				return true
			}
		}
		for k, e := range n3.farm.Stats().Errors {
			if strings.Contains(k, "big") && strings.Contains(e, "no space left") {
				return true
			}
		}
		return false
	})
	// node3 keeps retrying (a file may be in transfer at any moment), but failed parts never pile up.
	empty := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		left := n3.farm.store.incomingFiles()
		if len(left) > 1 {
			t.Fatalf("partial transfers pile up on node3: %v", left)
		}
		empty = empty || len(left) == 0
	}
	if !empty {
		t.Fatal("a failed transfer's partial file stays on node3")
	}
	if n3.serves("/big/", "big app") {
		t.Fatal("node3 serves a bundle that could not be stored")
	}
	if !n3.serves("/tiny/", "tiny app") {
		t.Fatal("node3 stopped serving what it ran before the full disk")
	}
}
