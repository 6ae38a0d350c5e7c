package multicast

import (
	"flag"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
)

// profiles are the timing profiles the benchmarks compare.
var profiles = []struct {
	name  string
	apply func(*Config)
}{
	{"default", func(c *Config) {
		lan := DefaultLANConfig()
		c.Frequency, c.SuspectTime, c.DropTime = lan.Frequency, lan.SuspectTime, lan.DropTime
	}},
	{"fast", nil}, // DefaultLocalConfig
}

func (c *cluster) shutdownAll() {
	for _, p := range c.members {
		_ = p.Shutdown()
	}
}

// BenchmarkFailureDetection measures, per profile, the time from a member's
// crash (Shutdown without Leave: its heartbeats stop) to "dead" on every
// one of its 2 peers. Run: go test -run=^$ -bench=. -benchtime=5x ./membership/multicast
func BenchmarkFailureDetection(b *testing.B) {
	for _, prof := range profiles {
		b.Run(prof.name, func(b *testing.B) {
			var st testutil.Stats
			for i := 0; i < b.N; i++ {
				c := newCluster(b, 3, prof.apply)
				victim := c.members["node3"]
				inc := victim.Local().Incarnation
				start := time.Now()
				_ = victim.Shutdown()
				at := testutil.WaitAll(b, []*testutil.Recorder{c.recs["node1"], c.recs["node2"]},
					membership.EventDead, "node3", inc, 10*time.Second)
				st.Add(at.Sub(start))
				c.shutdownAll()
			}
			st.Report(b, "detect")
		})
	}
}

// BenchmarkJoin measures the time from Start of a fourth member to the
// moment all three existing members have its Join and it sees all of them.
func BenchmarkJoin(b *testing.B) {
	for _, prof := range profiles {
		b.Run(prof.name, func(b *testing.B) {
			var st testutil.Stats
			for i := 0; i < b.N; i++ {
				c := newCluster(b, 3, prof.apply)
				start := time.Now()
				p := c.start("node4", nil)
				at := testutil.WaitAll(b, []*testutil.Recorder{c.recs["node1"], c.recs["node2"], c.recs["node3"]},
					membership.EventJoin, "node4", p.Local().Incarnation, 10*time.Second)
				if seen := testutil.WaitSeen(b, c.recs["node4"], membership.EventJoin,
					[]string{"node1", "node2", "node3"}, 10*time.Second); seen.After(at) {
					at = seen
				}
				st.Add(at.Sub(start))
				c.shutdownAll()
			}
			st.Report(b, "join")
		})
	}
}

// loadFor is how long BenchmarkFalseDeadUnderLoad burns every CPU (the figure is 2m:
// go test -run '^$' -bench FalseDead -benchtime 1x ./membership/multicast -args -herd.load=2m).
var loadFor = flag.Duration("herd.load", 3*time.Second, "CPU burn time of BenchmarkFalseDeadUnderLoad")

// BenchmarkFalseDeadUnderLoad keeps every CPU busy for -herd.load (3s) next to a
// 3-member cluster and reports how many "dead" events fired (goal: 0).
func BenchmarkFalseDeadUnderLoad(b *testing.B) {
	for _, prof := range profiles {
		b.Run(prof.name, func(b *testing.B) {
			falseDead := 0
			for i := 0; i < b.N; i++ {
				c := newCluster(b, 3, prof.apply)
				testutil.Burn(*loadFor)
				for _, n := range c.names() {
					for _, ev := range c.recs[n].Events() {
						if ev.Type == membership.EventDead {
							falseDead++
						}
					}
				}
				c.shutdownAll()
			}
			b.ReportMetric(float64(falseDead)/float64(b.N), "false-dead/op")
		})
	}
}
