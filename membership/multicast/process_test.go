package multicast

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
)

// TestChildProcessKilled runs a member in a child process, kills it with
// SIGKILL (no leave, no cleanup) and checks both in-process peers mark it dead.
func TestChildProcessKilled(t *testing.T) {
	c := newCluster(t, 2, nil)
	child := testutil.StartChild(t, "member", "HERD_MC_CHILD="+c.base.Cluster+"|"+c.base.Address+"|child")
	inc, err := strconv.ParseUint(strings.TrimPrefix(child.Line, "READY "), 10, 64)
	if err != nil {
		t.Fatalf("child said %q", child.Line)
	}
	for _, obs := range []string{"node1", "node2"} {
		c.waitEvent(obs, membership.EventJoin, "child", inc, 3*time.Second)
	}
	if err := child.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, obs := range []string{"node1", "node2"} {
		c.waitEvent(obs, membership.EventDead, "child", inc, 3*time.Second)
	}
	c.waitConverged("node1", "node2")
}

// TestNoFalseDeadUnderLoad keeps every CPU busy for several heartbeat
// periods with the LAN defaults and checks no live member is declared dead.
func TestNoFalseDeadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 4s")
	}
	c := newCluster(t, 3, func(cfg *Config) {
		lan := DefaultLANConfig()
		cfg.Frequency, cfg.SuspectTime, cfg.DropTime = lan.Frequency, lan.SuspectTime, lan.DropTime
	})
	testutil.Burn(4 * time.Second)
	for _, obs := range c.names() {
		for _, ev := range c.recs[obs].Events() {
			if ev.Type == membership.EventDead {
				t.Fatalf("%s declared %s dead under load", obs, ev.Member.Name)
			}
		}
	}
	c.waitConverged(c.names()...)
}
