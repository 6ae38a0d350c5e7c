package replication

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"syscall"
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
	benchMgr    = flag.String("herd.manager", ManagerDelta, "manager of BenchmarkReplicationModes: delta or backup (one backup)")
	benchProcs  = flag.Bool("herd.procs", false, "run each node of BenchmarkReplicationModes as its own process (false: all in the benchmark's process)")
	benchRounds = flag.Int("herd.rounds", 3, "interleaved rounds of BenchmarkReplicationModes (medians are printed)")
)

// BenchmarkReplicationModes measures a session-updating request (1 KiB of attributes rewritten each
// time) on a 3-node in-process cluster, clients spread over the nodes, with replication off and in
// each mode, and prints the ratios to "off" plus channel bytes per update. The modes run in
// -herd.rounds interleaved rounds (a fresh cluster each time) and the medians are printed: a shared
// machine drifts by tens of percent between seconds, and a ratio is only worth something when both
// of its sides saw the same machine.
// Run: go test -run '^$' -bench ReplicationModes -benchtime 1x ./replication [-args -herd.load=5s]
func BenchmarkReplicationModes(b *testing.B) {
	type row = modeRow
	modes := strings.Split(*benchModes, ",")
	rows := map[string][]row{}
	for range max(*benchRounds, 1) {
		var base float64
		for i, mode := range modes {
			r := runMode(b, mode)
			if i == 0 {
				base = r.res.PerSecond
			}
			r.ratio = r.res.PerSecond / base
			rows[mode] = append(rows[mode], r)
		}
	}
	var sb strings.Builder
	where := "one process"
	if *benchProcs {
		where = "a process each"
	}
	fmt.Fprintf(&sb, "\n3 nodes (%s), %s manager, %d clients, 1 KiB session update per request, %s per mode, medians of %d interleaved rounds\n",
		where, *benchMgr, *loadClients, *loadTime, max(*benchRounds, 1))
	fmt.Fprintf(&sb, "%-7s %9s %7s %9s %9s %8s %9s %12s %12s %11s %9s %8s   %s\n", "mode", "req/s", "ratio", "p50", "p99", "p99/off",
		"CPU/req", "wire B/upd", "msg B/change", "changes/msg", "ack wait", "dropped", "ratio per round")
	off := rows[modes[0]]
	for _, mode := range modes {
		rs := rows[mode]
		med := func(f func(i int, r row) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(i, r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		ratio := med(func(_ int, r row) float64 { return r.ratio })
		perSec := med(func(_ int, r row) float64 { return r.res.PerSecond })
		p50 := time.Duration(med(func(_ int, r row) float64 { return float64(r.res.P50) }))
		p99 := time.Duration(med(func(_ int, r row) float64 { return float64(r.res.P99) }))
		p99off := med(func(i int, r row) float64 { return float64(r.res.P99) / float64(off[i].res.P99) })
		var each []string
		for _, r := range rs {
			each = append(each, fmt.Sprintf("%.2f", r.ratio))
		}
		fmt.Fprintf(&sb, "%-7s %9.0f %6.2fx %9v %9v %7.2fx %7.1fµs %12.0f %12.0f %11.1f %7.0fµs %8.0f   %s\n", mode, perSec, ratio,
			p50.Round(time.Microsecond), p99.Round(time.Microsecond), p99off, med(func(_ int, r row) float64 { return r.cpu }),
			med(func(_ int, r row) float64 { return r.bytes }), med(func(_ int, r row) float64 { return r.body }),
			med(func(_ int, r row) float64 { return r.batch }), med(func(_ int, r row) float64 { return r.wait }),
			med(func(_ int, r row) float64 { return r.dropped }),
			strings.Join(each, " "))
		b.ReportMetric(perSec, mode+"_req/s")
		b.ReportMetric(ratio, mode+"_ratio")
	}
	b.Log(sb.String())
}

// modeRow is one mode's figures in one round.
type modeRow struct {
	res     loadgen.Result
	ratio   float64 // req/s against "off" in the same round
	bytes   float64 // channel bytes (both directions, all members) per update
	body    float64 // replication message bytes per change sent to one peer
	batch   float64 // changes per message
	wait    float64 // mean wait for the peers' acks of a sync change, µs
	cpu     float64 // CPU time (user+system) of the nodes and the load generator per request, µs
	dropped float64 // changes dropped on a full queue
}

// runMode starts a fresh 3-node cluster in the given mode ("off": no replicator), loads it for
// -herd.load and returns the figures; the cluster is stopped before it returns.
func runMode(b *testing.B, mode string) (r modeRow) {
	if *benchProcs {
		return runModeProcs(b, mode)
	}
	o := benchOpts(mode, *benchPool)
	nodes := startCluster(b, 3, o)
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.srv.URL
	}
	cpu0 := processCPU()
	res := runLoad(b, mode, urls)
	r.res = res
	r.cpu = perRequest(processCPU()-cpu0, res)
	if o.off {
		return r
	}
	var st benchStats
	for _, n := range nodes {
		st.add(nodeStats(n))
	}
	st.fill(&r)
	return r
}

// benchOpts are the cluster options of a benchmark mode ("off": no replicator).
func benchOpts(mode string, pool int) clusterOpts {
	return clusterOpts{off: mode == "off", pad: 1024, cfg: func(c *Config) { c.Mode, c.PoolSize, c.Manager = mode, pool, *benchMgr }}
}

// runLoad runs the benchmark's clients against the nodes' base URLs.
func runLoad(b *testing.B, mode string, urls []string) loadgen.Result {
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		Concurrency: *loadClients, Duration: *loadTime, Warmup: 3, Cookies: true,
		NewRequest: func(c int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, urls[c%len(urls)]+"/inc", nil)
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
	return res
}

// processCPU is the user+system CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perRequest is cpu spread over a load's requests (its warm-up ones included), in µs.
func perRequest(cpu time.Duration, res loadgen.Result) float64 {
	return float64(cpu) / 1e3 / float64(res.Requests+3**loadClients)
}

// benchStats are one or more nodes' replication counters after a load.
type benchStats struct {
	Wire, Body, Sent, Msgs uint64        // channel bytes sent; message bytes, changes and messages to peers
	Dropped                uint64        // changes dropped on a full queue (their sessions are resent whole)
	Waits, WaitMs          float64       // sync changes that waited for acks, and their total wait
	CPU                    time.Duration // a node process's CPU time during the load (-herd.procs)
}

func (s *benchStats) add(o benchStats) {
	s.Wire, s.Body, s.Sent, s.Msgs, s.Dropped = s.Wire+o.Wire, s.Body+o.Body, s.Sent+o.Sent, s.Msgs+o.Msgs, s.Dropped+o.Dropped
	s.Waits, s.WaitMs, s.CPU = s.Waits+o.Waits, s.WaitMs+o.WaitMs, s.CPU+o.CPU
}

// fill sets r's per-update figures (r.res must be set).
func (s benchStats) fill(r *modeRow) {
	if s.Waits > 0 {
		r.wait = s.WaitMs / s.Waits * 1000
	}
	r.dropped = float64(s.Dropped)
	r.bytes = float64(s.Wire) / float64(r.res.Requests+3**loadClients)
	if s.Sent > 0 {
		r.body = float64(s.Body) / float64(s.Sent)
		r.batch = float64(s.Sent) / float64(s.Msgs)
	}
}

// nodeStats waits for n's async queues to drain (10 s at most) and reads its counters.
func nodeStats(n *tnode) benchStats {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		queued := 0
		for _, p := range n.rep.Stats().Peers {
			queued += p.Queue
		}
		if queued == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var s benchStats
	st := n.rep.Stats()
	s.Waits = float64(st.SyncWaits)
	s.WaitMs = st.SyncAvgMs * float64(st.SyncWaits)
	for _, p := range n.ch.Stats().Peers {
		s.Wire += p.SentBytes
	}
	for _, p := range st.Peers {
		s.Body += p.Bytes
		s.Sent += p.Sent
		s.Msgs += p.Messages
		s.Dropped += p.Dropped
	}
	return s
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
