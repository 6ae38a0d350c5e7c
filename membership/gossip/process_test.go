package gossip

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
// SIGKILL and checks both in-process peers mark it dead.
func TestChildProcessKilled(t *testing.T) {
	c := newCluster(t, 2, nil)
	child := testutil.StartChild(t, "member", "HERD_GOSSIP_CHILD="+c.base.Cluster+"|"+c.seed+"|child")
	f := strings.Fields(child.Line)
	if len(f) != 3 || f[0] != "READY" {
		t.Fatalf("child said %q", child.Line)
	}
	inc, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, obs := range []string{"node1", "node2"} {
		c.waitEvent(obs, membership.EventJoin, "child", inc, 3*time.Second)
	}
	if err := child.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, obs := range []string{"node1", "node2"} {
		c.waitEvent(obs, membership.EventDead, "child", inc, 5*time.Second)
	}
	c.waitConverged("node1", "node2")
}

// TestNoFalseDeadUnderLoad keeps every CPU busy for several probe rounds
// with the LAN failure-detection settings and checks nobody is declared dead.
func TestNoFalseDeadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 4s")
	}
	c := newCluster(t, 3, func(cfg *Config) {
		lan := DefaultLANConfig()
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.SuspicionMult = lan.ProbeInterval, lan.ProbeTimeout, lan.SuspicionMult
		cfg.SuspicionMaxTimeoutMult, cfg.GossipInterval, cfg.IndirectChecks = lan.SuspicionMaxTimeoutMult, lan.GossipInterval, lan.IndirectChecks
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
