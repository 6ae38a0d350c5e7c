package farming

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/channel"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/testapps"
)

// TestDropReplaceRemove: a bundle dropped on node1 serves on all three; replaced, all serve the
// new bytes; the same bytes again change nothing; removed, all undeploy.
func TestDropReplaceRemove(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	waitFor(t, 10*time.Second, "all ready", func() bool { return n1.farm.Ready() && n2.farm.Ready() && n3.farm.Ready() })

	n1.drop(testapps.Bundle(t, "hello", "hello.zip"))
	waitServing(t, 15*time.Second, "/hello/", "<", c.nodes...)
	e1, ok := n3.ledgerEntry("hello")
	if !ok || e1.Origin != "node1" || e1.Deleted {
		t.Fatalf("node3 ledger entry for hello: %+v (found %v)", e1, ok)
	}

	// Replace with other bytes under the same name: every member redeploys.
	v2 := makeBundle(t, t.TempDir(), "hello.zip", "second edition", 0)
	n1.drop(v2)
	waitServing(t, 15*time.Second, "/hello/", "second edition", c.nodes...)
	e2, _ := n2.ledgerEntry("hello")
	if e2.SHA256 == e1.SHA256 || e2.Stamp <= e1.Stamp {
		t.Fatalf("replacement not recorded: before %+v after %+v", e1, e2)
	}

	// The same bytes again (a new mtime): nothing changes.
	path := filepath.Join(n1.watch, "hello.zip")
	later := time.Now().Add(2 * time.Second)
	must(t, os.Chtimes(path, later, later))
	time.Sleep(600 * time.Millisecond)
	if e, _ := n1.ledgerEntry("hello"); e.Stamp != e2.Stamp {
		t.Fatalf("same bytes dropped again changed the ledger: %+v -> %+v", e2, e)
	}

	// Remove: undeployed everywhere, a tombstone in every ledger.
	must(t, os.Remove(path))
	waitGone(t, 15*time.Second, "/hello/", c.nodes...)
	for _, nd := range c.nodes {
		if e, _ := nd.ledgerEntry("hello"); !e.Deleted {
			t.Fatalf("%s: no tombstone: %+v", nd.name, e)
		}
		waitFor(t, 5*time.Second, "digests equal", func() bool { return nd.farm.Digest() == n1.farm.Digest() })
	}
}

// TestCatchUp: node3 is down while a bundle is dropped and another removed; when it comes back
// it fetches the first, does not deploy the second, and only then reports ready.
func TestCatchUp(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	n1.drop(makeBundle(t, t.TempDir(), "old.zip", "old app", 0))
	waitServing(t, 15*time.Second, "/old/", "old app", c.nodes...)

	n3.stop()
	c.waitMembers(2)
	must(t, os.Remove(filepath.Join(n1.watch, "old.zip")))
	n2.drop(makeBundle(t, t.TempDir(), "fresh.zip", "fresh app", 64<<10))
	waitServing(t, 15*time.Second, "/fresh/", "fresh app", n1, n2)
	waitGone(t, 15*time.Second, "/old/", n1, n2)

	start := time.Now()
	n3.start()
	waitFor(t, 15*time.Second, "node3 ready", n3.farm.Ready)
	// Ready means applied: no waiting beyond this point.
	if !n3.serves("/fresh/", "fresh app") {
		t.Fatalf("node3 ready but not serving /fresh/: %+v", n3.farm.Stats())
	}
	if code, _ := n3.get("/old/"); code != 404 {
		t.Fatalf("node3 serves /old/ (%d) after its removal", code)
	}
	t.Logf("node3 caught up in %s", time.Since(start))
	if d := n3.farm.Digest(); d != n1.farm.Digest() {
		waitFor(t, 5*time.Second, "digests equal", func() bool { return n3.farm.Digest() == n1.farm.Digest() })
	}
}

// TestSenderKilledMidTransfer: node1's channel dies while it streams a bundle to node3; node3
// keeps nothing half written, deploys nothing, and gets the bundle from node2 instead.
func TestSenderKilledMidTransfer(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	reached := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	hook := func(peer string, sent int64) {
		if peer == "node3" && sent >= 1<<20 {
			once.Do(func() { close(reached) })
			<-release
		}
	}
	n1.farm.sendHook.Store(&hook)
	n1.drop(makeBundle(t, t.TempDir(), "big.zip", "big app", 4<<20))
	select {
	case <-reached:
	case <-time.After(15 * time.Second):
		t.Fatal("the transfer to node3 never reached 1 MiB")
	}
	waitServing(t, 15*time.Second, "/big/", "big app", n1, n2)
	if code, _ := n3.get("/big/"); code != 404 {
		t.Fatalf("node3 serves /big/ (%d) before its transfer completed", code)
	}
	must(t, n1.ch.Shutdown()) // the sender dies mid-transfer
	close(release)
	waitServing(t, 20*time.Second, "/big/", "big app", n3)
	st := n3.farm.Stats()
	if st.TransfersFailed == 0 {
		t.Fatalf("node3 saw no failed transfer: %+v", st.Transfers)
	}
	var fromNode2 bool
	for _, tr := range st.Transfers {
		if tr.Direction == "receive" && tr.Peer == "node2" && tr.Done && tr.Err == "" {
			fromNode2 = true
		}
	}
	if !fromNode2 {
		t.Fatalf("node3 did not get the bundle from node2: %+v", st.Transfers)
	}
	if left := n3.farm.store.incomingFiles(); len(left) != 0 {
		t.Fatalf("node3 left partial files: %v", left)
	}
}

// TestCorruptBundle: a truncated archive is refused at the watch directory and never farmed; a
// holder whose stored copy rotted sends bytes the receiver refuses, and the receiver gets good
// bytes from another member.
func TestCorruptBundle(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	good := makeBundle(t, t.TempDir(), "broken.zip", "never", 0)
	b, err := os.ReadFile(good)
	must(t, err)
	bad := filepath.Join(t.TempDir(), "broken.zip")
	must(t, os.WriteFile(bad, b[:len(b)/2], 0o644))
	n1.drop(bad)
	waitFor(t, 10*time.Second, "refusal recorded", func() bool { return n1.farm.Stats().Errors["watch:broken.zip"] != "" })
	for _, nd := range c.nodes {
		if _, ok := nd.ledgerEntry("broken"); ok {
			t.Fatalf("%s: a corrupt bundle reached the ledger", nd.name)
		}
	}

	n3.stop()
	c.waitMembers(2)
	n1.drop(makeBundle(t, t.TempDir(), "rot.zip", "rot app", 256<<10))
	waitServing(t, 15*time.Second, "/rot/", "rot app", n1, n2)
	e, _ := n1.ledgerEntry("rot")
	stored := n1.farm.store.path(e.SHA256, e.File)
	sb, err := os.ReadFile(stored)
	must(t, err)
	sb[len(sb)/2] ^= 0xff
	must(t, os.WriteFile(stored, sb, 0o644))

	n3.start()
	waitServing(t, 20*time.Second, "/rot/", "rot app", n3)
	st := n3.farm.Stats()
	var refused bool
	for _, tr := range st.Transfers {
		if tr.Peer == "node1" && strings.Contains(tr.Err, "sha256 mismatch") {
			refused = true
		}
	}
	if !refused {
		t.Fatalf("node3 did not refuse node1's rotten copy: %+v", st.Transfers)
	}
	if left := n3.farm.store.incomingFiles(); len(left) != 0 {
		t.Fatalf("node3 left partial files: %v", left)
	}
}

// TestZipSlipRefusedEverywhere: a zip-slip bundle dropped in the watch directory is refused and
// never farmed; one forced into the ledger by a member that skipped validation is refused by
// every member's deploy; nothing is written outside the members' directories.
func TestZipSlipRefusedEverywhere(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1 := c.nodes[0]
	escape := fmt.Sprintf("herd-farm-zipslip-%d", time.Now().UnixNano())
	evil := filepath.Join(t.TempDir(), "evil.zip")
	testapps.ZipSlip(t, evil, escape)
	n1.drop(evil)
	waitFor(t, 10*time.Second, "refusal recorded", func() bool { return n1.farm.Stats().Errors["watch:evil.zip"] != "" })
	if _, ok := n1.ledgerEntry("evil"); ok {
		t.Fatal("the zip-slip bundle reached the ledger")
	}

	// A member that skips validation puts it in the ledger anyway: every deploy refuses it.
	sum, err := bundle.SHA256File(evil)
	must(t, err)
	fi, err := os.Stat(evil)
	must(t, err)
	must(t, n1.farm.store.importFile(evil, sum, "evil.zip"))
	n1.farm.mu.Lock()
	e := Entry{Key: "evil", File: "evil.zip", Name: "evil", Context: "/evil", SHA256: sum, Size: fi.Size(),
		Origin: "node1", Stamp: n1.farm.led.stamp(time.Now().UnixMilli())}
	changed := n1.farm.led.merge([]Entry{e})
	n1.farm.mu.Unlock()
	n1.farm.changed(changed)
	for _, nd := range c.nodes {
		waitFor(t, 15*time.Second, nd.name+" refusing evil", func() bool {
			for _, f := range nd.farm.Stats().Failures {
				if f.Key == "evil" && strings.Contains(f.Err, "..") {
					return true
				}
			}
			return false
		})
		if code, _ := nd.get("/evil/"); code != 404 {
			t.Fatalf("%s serves /evil/ (%d)", nd.name, code)
		}
	}
	for _, nd := range c.nodes {
		for _, dir := range []string{nd.watch, nd.temp, nd.work, filepath.Join(nd.work, "apps"), nd.farm.store.bundles, nd.farm.store.incoming} {
			for _, up := range []string{"..", "../..", "../../.."} {
				if _, err := os.Lstat(filepath.Join(dir, up, escape)); err == nil {
					t.Fatalf("zip slip wrote %s", filepath.Join(dir, up, escape))
				}
			}
		}
	}
}

// TestWrongSecretCannotPush: a channel without the cluster secret cannot push ledger entries or
// stream bundles; a member with the secret cannot push a bundle nobody asked for.
func TestWrongSecretCannotPush(t *testing.T) {
	c := newCluster(t, 1, nil)
	n1 := c.nodes[0]
	before := n1.farm.Digest()

	cc := channel.DefaultLocalConfig()
	cc.Name, cc.Cluster, cc.Secret, cc.Bind = "intruder", c.name, []byte("not-the-secret-at-all-0123456789"), ""
	rogue, err := channel.New(cc)
	must(t, err)
	must(t, rogue.Start(context.Background()))
	defer rogue.Shutdown()
	e := Entry{Key: "evil", File: "evil.zip", Name: "evil", Context: "/evil", SHA256: strings.Repeat("a", 64),
		Size: 10, Origin: "intruder", Stamp: 1 << 62}
	body, err := encodeEntries([]Entry{e})
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := rogue.Request(ctx, n1.ch.Addr(), channel.Message{Type: msgLedgerPush, Body: body}); !errors.Is(err, channel.ErrHandshake) && !errors.Is(err, channel.ErrPeerUnavailable) {
		t.Fatalf("push with a wrong secret: err = %v, want a handshake failure", err)
	}
	hdr, _ := channel.Encode(bundleRef{SHA256: e.SHA256, File: e.File, Size: 10})
	if _, err := rogue.OpenStream(ctx, n1.ch.Addr(), channel.Message{Type: msgBundle, Body: hdr}); err == nil {
		t.Fatal("a stream with a wrong secret was accepted")
	}
	if n1.farm.Digest() != before {
		t.Fatal("the ledger changed")
	}

	// The right secret, but a bundle nobody asked for.
	cc.Secret, cc.Name = testSecret, "node9"
	member, err := channel.New(cc)
	must(t, err)
	must(t, member.Start(context.Background()))
	defer member.Shutdown()
	st, err := member.OpenStream(ctx, n1.ch.Addr(), channel.Message{Type: msgBundle, Body: hdr})
	if err == nil {
		_, _ = st.Write(make([]byte, 10))
		err = st.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "unsolicited") {
		t.Fatalf("unsolicited stream: err = %v", err)
	}
	if left := n1.farm.store.incomingFiles(); len(left) != 0 {
		t.Fatalf("files left in incoming: %v", left)
	}
}

// TestVersionsSideBySide: shop##2 dropped next to shop##1 runs beside it on every member; with
// UndeployOldVersions shop##1 goes once shop##3 arrives (no sessions hold it).
func TestVersionsSideBySide(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1 := c.nodes[0]
	n1.drop(makeBundle(t, t.TempDir(), "shop##1.zip", "shop one", 0))
	waitServing(t, 15*time.Second, "/shop/", "shop one", c.nodes...)
	n1.drop(makeBundle(t, t.TempDir(), "shop##2.zip", "shop two", 0))
	waitServing(t, 15*time.Second, "/shop/", "shop two", c.nodes...) // new sessions go to the newest
	for _, nd := range c.nodes {
		keys := appKeys(nd)
		if !keys["shop##1"] || !keys["shop##2"] {
			t.Fatalf("%s runs %v, want shop##1 and shop##2 side by side", nd.name, keys)
		}
	}
}

// TestUndeployOldVersions: with the option, only the newest version of a name stays.
func TestUndeployOldVersions(t *testing.T) {
	c := newCluster(t, 2, func(_ string, cfg *Config) { cfg.UndeployOldVersions = true })
	n1, n2 := c.nodes[0], c.nodes[1]
	n1.drop(makeBundle(t, t.TempDir(), "shop##1.zip", "shop one", 0))
	waitServing(t, 15*time.Second, "/shop/", "shop one", n1, n2)
	n2.drop(makeBundle(t, t.TempDir(), "shop##2.zip", "shop two", 0))
	waitServing(t, 15*time.Second, "/shop/", "shop two", n1, n2)
	waitFor(t, 15*time.Second, "shop##1 undeployed everywhere", func() bool {
		return !appKeys(n1)["shop##1"] && !appKeys(n2)["shop##1"]
	})
	if e, _ := n1.ledgerEntry("shop##1"); e.Deleted {
		t.Fatal("shop##1 was tombstoned; it should only be retired")
	}
}

func appKeys(nd *tnode) map[string]bool {
	out := map[string]bool{}
	for _, a := range nd.srv.Apps() {
		out[a.Key] = true
	}
	return out
}

// TestConcurrentDrops: two members drop different bytes under one name at once; every member
// ends up serving the same winner, the one the conflict rule picks.
func TestConcurrentDrops(t *testing.T) {
	c := newCluster(t, 3, nil)
	n1, n2 := c.nodes[0], c.nodes[1]
	a := makeBundle(t, t.TempDir(), "race.zip", "from node1", 0)
	b := makeBundle(t, t.TempDir(), "race.zip", "from node2", 0)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); dropInto(t, n1.watch, a, "race.zip") }()
	go func() { defer wg.Done(); dropInto(t, n2.watch, b, "race.zip") }()
	wg.Wait()
	waitFor(t, 15*time.Second, "ledgers agree", func() bool {
		d := c.nodes[0].farm.Digest()
		for _, nd := range c.nodes {
			e, ok := nd.ledgerEntry("race")
			if !ok || nd.farm.Digest() != d || e.Origin == "" {
				return false
			}
		}
		return true
	})
	win, _ := n1.ledgerEntry("race")
	want := "from " + win.Origin
	waitServing(t, 15*time.Second, "/race/", want, c.nodes...)
}

// TestSignatures: with signing required, an unsigned or badly signed bundle is refused and a
// signed one is farmed; a member that requires signatures refuses an unsigned bundle another
// member (which does not) farmed.
func TestSignatures(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	must(t, err)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	c := newCluster(t, 3, func(name string, cfg *Config) {
		cfg.Signing = Signing{Keys: []ed25519.PublicKey{pub}, Required: name != "node1"}
	})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	// node2 requires signatures: unsigned and wrongly signed bundles are refused at its watch dir.
	unsigned := makeBundle(t, t.TempDir(), "plain.zip", "plain", 0)
	n2.drop(unsigned)
	waitFor(t, 10*time.Second, "unsigned refused", func() bool {
		return strings.Contains(n2.farm.Stats().Errors["watch:plain.zip"], "not signed")
	})
	forged := makeBundle(t, t.TempDir(), "forged.zip", "forged", 0)
	sig, err := SignFile(otherPriv, forged)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(n2.watch, "forged.zip.sig"), sig, 0o644))
	n2.drop(forged)
	waitFor(t, 10*time.Second, "forged refused", func() bool {
		return strings.Contains(n2.farm.Stats().Errors["watch:forged.zip"], "does not verify")
	})

	// A signed bundle (signature first, then the bundle) is farmed everywhere.
	signed := makeBundle(t, t.TempDir(), "signed.zip", "signed app", 0)
	sig, err = SignFile(priv, signed)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(n2.watch, "signed.zip.sig"), sig, 0o644))
	n2.drop(signed)
	waitServing(t, 15*time.Second, "/signed/", "signed app", c.nodes...)

	// node1 does not require signatures; nodes 2 and 3 refuse what it farms unsigned.
	n1.drop(makeBundle(t, t.TempDir(), "loose.zip", "loose app", 0))
	waitServing(t, 15*time.Second, "/loose/", "loose app", n1)
	for _, nd := range []*tnode{n2, n3} {
		waitFor(t, 10*time.Second, nd.name+" refusing loose", func() bool {
			for _, f := range nd.farm.Stats().Failures {
				if f.Key == "loose" && strings.Contains(f.Err, ErrUnsigned.Error()) {
					return true
				}
			}
			return false
		})
		if code, _ := nd.get("/loose/"); code != 404 {
			t.Fatalf("%s serves an unsigned bundle (%d)", nd.name, code)
		}
	}
	if !n2.farm.Ready() || !n3.farm.Ready() {
		t.Fatal("a refused bundle must not keep a member unready")
	}
}

// TestCloseStopsGoroutines: a standalone Manager (no membership) deploys from its watch directory
// and Close stops every goroutine it started.
func TestCloseStopsGoroutines(t *testing.T) {
	c := newCluster(t, 1, nil)
	n1 := c.nodes[0]
	must(t, n1.farm.Close())
	fc := Config{Name: "node1", WatchDir: n1.watch, TempDir: t.TempDir(), Settle: 50 * time.Millisecond, SyncGrace: 10 * time.Millisecond}
	m, err := New(fc, n1.ch, nil, serverDeployer{n1.srv})
	must(t, err)
	must(t, m.Start(context.Background()))
	n1.farm = m
	n1.drop(makeBundle(t, t.TempDir(), "solo.zip", "solo app", 0))
	waitServing(t, 10*time.Second, "/solo/", "solo app", n1)
	waitFor(t, 5*time.Second, "standalone farm ready", m.Ready)
	if farmGoroutines() == 0 {
		t.Fatal("the goroutine count sees no farm goroutine while it runs")
	}
	must(t, m.Close())
	must(t, m.Close())
	waitFor(t, 5*time.Second, "the farm's goroutines to end", func() bool { return farmGoroutines() == 0 })
	if err := m.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// farmGoroutines counts goroutines running a Manager method, other than the test's own.
func farmGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "herd/farming.(*Manager)") && !strings.Contains(g, "farming.Test") {
			n++
		}
	}
	return n
}
