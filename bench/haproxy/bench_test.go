package haproxy

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	duration    = flag.Duration("duration", 3*time.Second, "length of each measurement")
	numRounds   = flag.Int("rounds", 3, "interleaved repetitions of every measurement (medians are reported)")
	concurrency = flag.Int("concurrency", 16, "clients, each with its own session")
	proxyCPU    = flag.String("proxycpu", "0", "taskset CPU list of the proxy under test")
	loadCPU     = flag.String("loadcpu", "1", "taskset CPU list of the load generator")
	nodeCPU     = flag.String("nodecpu", "", "taskset CPU list of the nodes (default: -proxycpu, sharing the proxy's core; -nodecpu 1 gives the proxy a core of its own)")
)

func TestMain(m *testing.M) {
	if code, ok := RunRole(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// BenchmarkRouterVsHAProxy prints requests/s, p50 and p99 for each size and target and reports
// the herd/HAProxy ratios as metrics. Run it once: -benchtime 1x.
func BenchmarkRouterVsHAProxy(b *testing.B) {
	var log strings.Builder
	rep, err := Run(b.Context(), Config{Binary: os.Args[0], Duration: *duration, Rounds: *numRounds,
		Concurrency: *concurrency, ProxyCPU: *proxyCPU, LoadCPU: *loadCPU, NodeCPU: *nodeCPU, Log: &log})
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out)
	b.Log("\n" + out.String())
	for _, size := range []string{"small", "64k"} {
		if h := rep.Find(size, "herd"); h != nil {
			b.ReportMetric(h.PerSecond, size+"_herd_req/s")
		}
		if h, x := rep.Find(size, "herd"), rep.Find(size, "haproxy"); h != nil && x != nil {
			b.ReportMetric(h.PerSecond/x.PerSecond, size+"_tput_ratio")
			b.ReportMetric(float64(h.P99)/float64(x.P99), size+"_p99_ratio")
		}
	}
	if rep.Skipped != "" {
		b.Skip("HAProxy rows skipped: " + rep.Skipped)
	}
}

// TestHarness runs the whole benchmark briefly, so the harness itself stays working; HAProxy's
// rows are skipped when it is not installed.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	rep, err := Run(t.Context(), Config{Binary: os.Args[0], Duration: time.Second, Rounds: 1, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log("\n" + out.String())
	want := 4
	if rep.Skipped == "" {
		want = 6
	}
	if len(rep.Rows) != want {
		t.Fatalf("%d rows, want %d", len(rep.Rows), want)
	}
	for _, r := range rep.Rows {
		if r.Failures != 0 || r.Requests == 0 {
			t.Fatalf("%s %s: %d requests, %d failures", r.Size, r.Target, r.Requests, r.Failures)
		}
	}
	if !strings.Contains(haproxyConfig(1, []string{"a:1", "b:2"}), "use-server node2 if { req.cook(JSESSIONID) -m end .node2 }") {
		t.Fatal("haproxy config is not sticky on the route suffix")
	}
}
