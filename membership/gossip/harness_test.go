package gossip

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
)

var clusterSeq atomic.Int64

// cluster is an in-process gossip cluster on 127.0.0.1 for one test.
type cluster struct {
	t       testing.TB
	base    Config
	members map[string]*Provider
	recs    map[string]*testutil.Recorder
	seed    string // address of the first member
}

// newCluster starts n members node1..nodeN with the fast profile (mutated by
// mutate, if not nil), each seeded with node1, and waits for convergence.
func newCluster(t testing.TB, n int, mutate func(*Config)) *cluster {
	t.Helper()
	base := DefaultLocalConfig()
	base.Cluster = fmt.Sprintf("test-%d-%d", time.Now().UnixNano()%1e9, clusterSeq.Add(1))
	base.Secret = testSecret
	base.Logger = testutil.Logger(t)
	if mutate != nil {
		mutate(&base)
	}
	c := &cluster{t: t, base: base, members: map[string]*Provider{}, recs: map[string]*testutil.Recorder{}}
	for i := 1; i <= n; i++ {
		p := c.start(fmt.Sprintf("node%d", i), nil)
		if i == 1 {
			c.seed = p.Addr()
		}
	}
	c.waitConverged(c.names()...)
	return c
}

func (c *cluster) names() []string {
	var out []string
	for n := range c.members {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// start starts a member seeded with the first member, recording its events.
func (c *cluster) start(name string, mutate func(*Config)) *Provider {
	c.t.Helper()
	cfg := c.base
	cfg.Local = membership.Member{Name: name, HTTPAddr: "127.0.0.1:1", ChannelAddr: "127.0.0.1:2",
		Meta: membership.Meta{Version: "test"}}
	if c.seed != "" {
		cfg.Seeds = []string{c.seed}
	}
	cfg.Logger = c.base.Logger.With("test_member", name)
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = p.Shutdown() })
	rec := testutil.Record(c.t, p.Subscribe())
	if err := p.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.members[name], c.recs[name] = p, rec
	return p
}

func (c *cluster) waitConverged(names ...string) {
	c.t.Helper()
	want := slices.Clone(names)
	slices.Sort(want)
	testutil.Eventually(c.t, 10*time.Second, func() error {
		for _, n := range names {
			got := testutil.Names(c.members[n].Members())
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s sees %v, want %v", n, got, want)
			}
		}
		return nil
	})
}

func (c *cluster) waitEvent(observer string, typ membership.EventType, name string, inc uint64, timeout time.Duration) membership.Event {
	c.t.Helper()
	var ev membership.Event
	testutil.Eventually(c.t, timeout, func() error {
		var ok bool
		if ev, ok = c.recs[observer].Find(typ, name, inc); !ok {
			return fmt.Errorf("%s has no %s event for %s (inc %d); events: %v", observer, typ, name, inc, c.recs[observer].Events())
		}
		return nil
	})
	return ev
}

func equal(a, b []string) bool { return slices.Equal(a, b) }
