package replication

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/loadgen"
	"github.com/herdproject/herd/session"
)

var (
	loadTime    = flag.Duration("herd.load", 3*time.Second, "load time per mode in BenchmarkReplicationModes")
	loadClients = flag.Int("herd.clients", 8, "concurrent clients (each with its own session) in BenchmarkReplicationModes")
	transferN   = flag.Int("herd.sessions", 100000, "sessions moved by BenchmarkStateTransfer")
	benchPool   = flag.Int("herd.pool", 8, "poolSize in BenchmarkReplicationModes")
	benchModes  = flag.String("herd.modes", "off,async,sync,pooled", "modes BenchmarkReplicationModes runs (off first for the ratios)")
)

// BenchmarkReplicationModes measures a session-updating request (1 KiB of attributes rewritten each
// time) on a 3-node in-process cluster, clients spread over the nodes, with replication off and in
// each mode, and prints the ratios to "off" measured in this one run, plus channel bytes per update.
// Run: go test -run '^$' -bench ReplicationModes -benchtime 1x ./replication [-args -herd.load=5s]
func BenchmarkReplicationModes(b *testing.B) {
	type row struct {
		mode  string
		res   loadgen.Result
		bytes float64 // channel bytes (both directions, all members) per update
		body  float64 // replication message bytes per change sent to one peer
		batch float64 // changes per message
		wait  float64 // mean wait for the peers' acks of a sync change, µs
	}
	var rows []row
	for _, mode := range strings.Split(*benchModes, ",") {
		o := clusterOpts{off: mode == "off", pad: 1024, cfg: func(c *Config) { c.Mode, c.PoolSize = mode, *benchPool }}
		nodes := startCluster(b, 3, o)
		res, err := loadgen.Run(context.Background(), loadgen.Options{
			Concurrency: *loadClients, Duration: *loadTime, Warmup: 3, Cookies: true,
			NewRequest: func(c int) (*http.Request, error) {
				return http.NewRequest(http.MethodGet, nodes[c%3].srv.URL+"/inc", nil)
			},
			Check: func(resp *http.Response, _ []byte) error {
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		if res.Failures > 0 {
			b.Fatalf("%s: %d failures, first %v", mode, res.Failures, res.FirstErr)
		}
		r := row{mode: mode, res: res}
		if !o.off {
			// let async queues drain before counting
			waitFor(b, 10*time.Second, "queues drained", func() bool {
				for _, n := range nodes {
					for _, p := range n.rep.Stats().Peers {
						if p.Queue > 0 {
							return false
						}
					}
				}
				return true
			})
			var wire, body, sent, msgs uint64
			var waits, waitMs float64
			for _, n := range nodes {
				st := n.rep.Stats()
				waits += float64(st.SyncWaits)
				waitMs += st.SyncAvgMs * float64(st.SyncWaits)
				for _, p := range n.ch.Stats().Peers {
					wire += p.SentBytes
				}
				for _, p := range n.rep.Stats().Peers {
					body += p.Bytes
					sent += p.Sent
					msgs += p.Messages
				}
			}
			if waits > 0 {
				r.wait = waitMs / waits * 1000
			}
			updates := float64(res.Requests + 3**loadClients)
			r.bytes = float64(wire) / updates
			if sent > 0 {
				r.body = float64(body) / float64(sent)
				r.batch = float64(sent) / float64(msgs)
			}
		}
		for _, n := range nodes {
			n.stop()
		}
		rows = append(rows, r)
	}
	base := rows[0].res
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n3 nodes, %d clients, 1 KiB session update per request, %s per mode\n", *loadClients, *loadTime)
	fmt.Fprintf(&sb, "%-7s %9s %7s %9s %9s %8s %12s %12s %11s %9s\n", "mode", "req/s", "ratio", "p50", "p99", "p99/off", "wire B/upd", "msg B/change", "changes/msg", "ack wait")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-7s %9.0f %6.2fx %9v %9v %7.2fx %12.0f %12.0f %11.1f %7.0fµs\n", r.mode, r.res.PerSecond,
			r.res.PerSecond/base.PerSecond, r.res.P50.Round(time.Microsecond), r.res.P99.Round(time.Microsecond),
			float64(r.res.P99)/float64(base.P99), r.bytes, r.body, r.batch, r.wait)
		b.ReportMetric(r.res.PerSecond, r.mode+"_req/s")
		b.ReportMetric(r.res.PerSecond/base.PerSecond, r.mode+"_ratio")
	}
	b.Log(sb.String())
}

// BenchmarkStateTransfer measures how long a joining node takes to pull -herd.sessions sessions of
// 1 KiB from a peer (delta manager), and the heap each replica costs on the receiver.
// Run: go test -run '^$' -bench StateTransfer -benchtime 1x ./replication
func BenchmarkStateTransfer(b *testing.B) {
	n := *transferN
	o := clusterOpts{cfg: func(c *Config) { c.Mode = ModeAsync; c.TransferTimeout = time.Minute }}
	src := newNode(b, "node1", o)
	pad := []byte(strings.Repeat("s", 1000))
	for i := range n {
		s, err := src.sm.Create("counter")
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Update(map[string][]byte{"n": []byte(fmt.Sprint(i)), "pad": pad}, nil); err != nil {
			b.Fatal(err)
		}
		s.Commit()
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	dst := newNode(b, "node2", o, src.mem.Addr())
	waitFor(b, 2*time.Minute, "the transfer", func() bool { return dst.rep.Ready() == nil })
	wall := time.Since(start)
	st := dst.rep.Stats().Transfer
	if st == nil || st.Error != "" || st.Sessions != n || dst.sm.Len() != n {
		b.Fatalf("transfer %+v, %d sessions held", st, dst.sm.Len())
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perSession := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	b.ReportMetric(float64(st.DurationMs), "transfer_ms")
	b.ReportMetric(perSession, "replica_heap_B/session")
	b.Logf("\nstate transfer of %d sessions (1 KiB each, %d MB stream): %d ms (node start to ready %v); replica heap %.0f B/session",
		n, st.Bytes>>20, st.DurationMs, wall.Round(time.Millisecond), perSession)
	if dst.sm.Len() != n {
		b.Fatal(errors.New("sessions missing"))
	}
	_ = session.DefaultMaxSize
}
