package multicast

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

// cluster is an in-process multicast cluster on lo for one test.
type cluster struct {
	t       testing.TB
	base    Config
	members map[string]*Provider
	recs    map[string]*testutil.Recorder
}

func requireMulticast(t testing.TB) {
	t.Helper()
	if err := testutil.LoMulticast(); err != nil {
		t.Skipf("multicast on lo unavailable: %v", err)
	}
}

// newCluster starts n members node1..nodeN with the fast profile (mutated by
// mutate, if not nil) and waits until they all see each other.
func newCluster(t testing.TB, n int, mutate func(*Config)) *cluster {
	t.Helper()
	requireMulticast(t)
	base := DefaultLocalConfig()
	base.Cluster = fmt.Sprintf("test-%d-%d", time.Now().UnixNano()%1e9, clusterSeq.Add(1))
	base.Secret = testSecret
	base.Address = fmt.Sprintf("239.77.0.1:%d", testutil.FreeUDPPort(t))
	base.Logger = testutil.Logger(t)
	if mutate != nil {
		mutate(&base)
	}
	c := &cluster{t: t, base: base, members: map[string]*Provider{}, recs: map[string]*testutil.Recorder{}}
	for i := 1; i <= n; i++ {
		c.start(fmt.Sprintf("node%d", i), nil)
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

// start starts a member (replacing any of the same name in the map) and
// records its events from before Start.
func (c *cluster) start(name string, mutate func(*Config)) *Provider {
	c.t.Helper()
	cfg := c.base
	cfg.Local = membership.Member{Name: name, HTTPAddr: "127.0.0.1:1", ChannelAddr: "127.0.0.1:2",
		Meta: membership.Meta{Version: "test"}}
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

// waitConverged waits until every listed member sees exactly the listed
// members alive.
func (c *cluster) waitConverged(names ...string) {
	c.t.Helper()
	want := slices.Clone(names)
	slices.Sort(want)
	testutil.Eventually(c.t, 5*time.Second, func() error {
		for _, n := range names {
			got := testutil.Names(c.members[n].Members())
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s sees %v, want %v", n, got, want)
			}
		}
		return nil
	})
}

// waitEvent waits until observer has recorded an event of typ for name
// (incarnation inc, if not 0).
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
