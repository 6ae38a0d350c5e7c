// Package haproxy benchmarks herd's router against HAProxy on the same herd nodes in the same run:
// requests/s and p50/p99 latency for a small response and a 64 KiB one, each client holding a
// sticky session cookie, measured directly against the nodes, through `herd router` and through
// HAProxy (sticky on the JSESSIONID route suffix, keep-alive to the nodes). Every party runs in its
// own process pinned with taskset: by default the proxy and the nodes on one CPU, the load
// generator on the other (the proxy's CPU time is taken from the backends, as in a deployment where
// they share machines); -nodecpu 1 moves the nodes to the load generator's CPU instead. See
// README.md; run it with
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/haproxy
//
// HAProxy comes from the Debian package haproxy; without it, its rows are skipped.
package haproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Config describes one benchmark run.
type Config struct {
	// Binary runs the roles (see RunRole); in tests, os.Args[0].
	Binary string
	// Nodes is the number of herd nodes (default 2).
	Nodes int
	// Concurrency is the number of clients, each with its own session (default 16).
	Concurrency int
	// Duration is the length of each measurement (default 3s).
	Duration time.Duration
	// Rounds repeats every measurement, interleaved, and reports medians (default 3): the machine
	// may be shared, and one noisy second should not decide a ratio.
	Rounds int
	// ProxyCPU and LoadCPU are taskset CPU lists (default "0" and "1"). NodeCPU is the nodes' list,
	// by default ProxyCPU: the proxy shares its core with the backends, so every µs it spends on a
	// request is taken from them (the placement the router issue's HAProxy figures come from). Set it
	// to LoadCPU to give the proxy a core of its own.
	ProxyCPU, LoadCPU, NodeCPU string
	// HAProxy is the haproxy executable (default: "haproxy" from PATH; absent: its rows are skipped).
	HAProxy string
	// Log receives progress lines (default io.Discard).
	Log io.Writer
}

// Row is one measurement.
type Row struct {
	Size      string // "small" or "64k"
	Target    string // "direct", "herd" or "haproxy"
	Requests  int
	Failures  int
	PerSecond float64
	P50, P99  time.Duration
	// ProxyCPU is the CPU time the proxy process used per request (0 for direct).
	ProxyCPU time.Duration
	// ProxyBusy and LoadBusy are the shares of time the proxy's CPU and the load CPU were busy, 0
	// to 1 (0 when unknown or when the list names more than one CPU).
	ProxyBusy, LoadBusy float64
	// LoadCPU is the busy time of the load CPU per request: what a request costs the processes
	// there (the load generator, and the nodes when NodeCPU is LoadCPU) and the kernel's work for
	// them.
	LoadCPU time.Duration
}

// Report is the outcome of a run.
type Report struct {
	Rounds    int
	Placement string
	Skipped   string // why HAProxy was not measured, if it was not
	Rows      []Row
}

// Find returns the row for size and target, or nil.
func (r *Report) Find(size, target string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Size == size && r.Rows[i].Target == target {
			return &r.Rows[i]
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.Nodes == 0 {
		c.Nodes = 2
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.ProxyCPU == "" {
		c.ProxyCPU = "0"
	}
	if c.LoadCPU == "" {
		c.LoadCPU = "1"
	}
	if c.NodeCPU == "" {
		c.NodeCPU = c.ProxyCPU
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// proc is one started process; done closes when it has exited.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	done  chan struct{}
}

// start starts cmd with a pipe on stdin (closing it asks a role to stop) and reaps it when it exits.
func start(cmd *exec.Cmd) (*proc, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Run starts the nodes, herd's router and HAProxy, measures every size and target, and stops
// everything it started.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	pin := func(cpu string, argv ...string) []string { return argv }
	rep := &Report{Rounds: cfg.Rounds}
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		pin = func(cpu string, argv ...string) []string { return append([]string{"taskset", "-c", cpu}, argv...) }
		rep.Placement = fmt.Sprintf("taskset: proxy (herd router or haproxy, 1 thread) on CPU %s; load generator on CPU %s; %d nodes on CPU %s; Go's GOMAXPROCS follows the affinity",
			cfg.ProxyCPU, cfg.LoadCPU, cfg.Nodes, cfg.NodeCPU)
	} else {
		rep.Placement = "unpinned (taskset missing or fewer than 2 CPUs)"
	}
	// The nodes' work dirs are made and removed here: a node that does not stop in time is
	// killed, and would leave its own behind.
	work, err := os.MkdirTemp("", "herd-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work) // after the processes stopped (deferred calls run last first)
	var started []*proc
	defer func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop()
		}
	}()
	var nodeAddrs []string
	for i := 1; i <= cfg.Nodes; i++ {
		name := "node" + strconv.Itoa(i)
		p, err := startRole(ctx, pin(cfg.NodeCPU, cfg.Binary), "node", "BENCH_NAME="+name, "BENCH_DIR="+filepath.Join(work, name))
		if err != nil {
			return nil, err
		}
		started = append(started, p)
		nodeAddrs = append(nodeAddrs, p.addr)
	}
	herd, err := startRole(ctx, pin(cfg.ProxyCPU, cfg.Binary), "router", "BENCH_BACKENDS="+strings.Join(nodeAddrs, ","))
	if err != nil {
		return nil, err
	}
	started = append(started, herd)
	targets := []target{{"direct", urls(nodeAddrs), 0}, {"herd", urls([]string{herd.addr}), herd.cmd.Process.Pid}}
	hap, skipped, err := startHAProxy(ctx, cfg, pin, nodeAddrs)
	switch {
	case err != nil:
		return nil, err
	case hap != nil:
		started = append(started, hap)
		targets = append(targets, target{"haproxy", urls([]string{hap.addr}), hap.cmd.Process.Pid})
	default:
		rep.Skipped = skipped
		fmt.Fprintf(cfg.Log, "skipping HAProxy: %s\n", skipped)
	}
	rows, err := rounds(ctx, cfg, pin, targets)
	if err != nil {
		return nil, err
	}
	rep.Rows = rows
	return rep, nil
}

// target is where the load goes: the base URLs (spread over the clients) and the proxy's pid.
type target struct {
	name string
	base []string
	pid  int
}

// rounds measures every size and target cfg.Rounds times, interleaved, and returns the medians.
func rounds(ctx context.Context, cfg Config, pin func(string, ...string) []string, targets []target) ([]Row, error) {
	samples := map[[2]string][]Row{}
	var order [][2]string
	for round := 1; round <= cfg.Rounds; round++ {
		for _, size := range []struct {
			name, path string
			bytes      int
		}{{"small", "/bench/small", len(SmallBody)}, {"64k", "/bench/64k", LargeSize}} {
			for _, t := range targets {
				var urls []string
				for _, b := range t.base {
					urls = append(urls, b+size.path)
				}
				row, err := measure(ctx, cfg, pin, t.pid, urls, size.bytes)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", size.name, t.name, err)
				}
				row.Size, row.Target = size.name, t.name
				fmt.Fprintf(cfg.Log, "round %d: %-5s %-8s %8.0f req/s  p50 %-10v p99 %-10v failures %d\n", round,
					size.name, t.name, row.PerSecond, row.P50, row.P99, row.Failures)
				key := [2]string{size.name, t.name}
				if round == 1 {
					order = append(order, key)
				}
				samples[key] = append(samples[key], row)
			}
		}
	}
	var rows []Row
	for _, key := range order {
		rows = append(rows, median(samples[key]))
	}
	return rows, nil
}

// median combines the rounds of one measurement: the median of each figure, failures summed.
func median(rows []Row) Row {
	out := rows[0]
	pick := func(get func(Row) float64) float64 {
		v := make([]float64, len(rows))
		for i, r := range rows {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out.PerSecond = pick(func(r Row) float64 { return r.PerSecond })
	out.P50 = time.Duration(pick(func(r Row) float64 { return float64(r.P50) }))
	out.P99 = time.Duration(pick(func(r Row) float64 { return float64(r.P99) }))
	out.ProxyCPU = time.Duration(pick(func(r Row) float64 { return float64(r.ProxyCPU) }))
	out.ProxyBusy = pick(func(r Row) float64 { return r.ProxyBusy })
	out.LoadBusy = pick(func(r Row) float64 { return r.LoadBusy })
	out.LoadCPU = time.Duration(pick(func(r Row) float64 { return float64(r.LoadCPU) }))
	out.Requests, out.Failures = 0, 0
	for _, r := range rows {
		out.Requests += r.Requests
		out.Failures += r.Failures
	}
	return out
}

func urls(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = "http://" + a
	}
	return out
}

// startRole starts the binary in a role and waits for its READY line.
func startRole(ctx context.Context, argv []string, role string, env ...string) (*proc, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), RoleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY ") {
		p.stop()
		return nil, fmt.Errorf("%s did not start: %q %v", role, line, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "READY "))
	return p, nil
}

// startHAProxy writes a sticky config for the nodes and starts haproxy; it returns a reason instead
// when haproxy is not installed.
func startHAProxy(ctx context.Context, cfg Config, pin func(string, ...string) []string, nodes []string) (*proc, string, error) {
	bin := cfg.HAProxy
	if bin == "" {
		bin = "haproxy"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, "haproxy is not installed (apt-get install -y haproxy)", nil
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "herd-bench-haproxy-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir) // haproxy has read its config once it answers
	file := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(haproxyConfig(port, nodes)), 0o644); err != nil {
		return nil, "", err
	}
	argv := pin(cfg.ProxyCPU, path, "-f", file, "-db")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	p, err := start(cmd)
	if err != nil {
		return nil, "", fmt.Errorf("start haproxy: %w", err)
	}
	p.addr = "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.exited() {
			return nil, "", fmt.Errorf("haproxy exited at start (config %s): %v", file, p.cmd.ProcessState)
		}
		resp, err := http.Get("http://" + p.addr + "/bench/small")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, "", nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", fmt.Errorf("haproxy did not answer on %s: %v", p.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// haproxyConfig is the HAProxy side of the comparison: one thread, keep-alive and connection reuse
// to the nodes, round robin for new sessions, and stickiness on the route suffix of JSESSIONID
// (<id>.<node>), which is what herd's router does.
func haproxyConfig(port int, nodes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:%d
    default_backend nodes

backend nodes
    balance roundrobin
`, port)
	for i := range nodes {
		fmt.Fprintf(&b, "    use-server node%d if { req.cook(JSESSIONID) -m end .node%d }\n", i+1, i+1)
	}
	for i, a := range nodes {
		fmt.Fprintf(&b, "    server node%d %s\n", i+1, a)
	}
	return b.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// measure runs the load process against targets and reads the proxy's CPU time around it.
func measure(ctx context.Context, cfg Config, pin func(string, ...string) []string, proxyPID int, targets []string, size int) (Row, error) {
	argv := pin(cfg.LoadCPU, cfg.Binary)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), RoleEnv+"=load", "BENCH_TARGETS="+strings.Join(targets, ","),
		"BENCH_CONCURRENCY="+strconv.Itoa(cfg.Concurrency), "BENCH_DURATION="+cfg.Duration.String(),
		"BENCH_SIZE="+strconv.Itoa(size))
	cmd.Stderr = os.Stderr
	cpu0 := cpuTime(proxyPID)
	pbusy0, ptotal0 := cpuBusy(cfg.ProxyCPU)
	busy0, total0 := cpuBusy(cfg.LoadCPU)
	out, err := cmd.Output()
	if err != nil {
		return Row{}, fmt.Errorf("load generator: %w", err)
	}
	cpu1 := cpuTime(proxyPID)
	pbusy1, ptotal1 := cpuBusy(cfg.ProxyCPU)
	busy1, total1 := cpuBusy(cfg.LoadCPU)
	var res loadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return Row{}, fmt.Errorf("load generator output %q: %w", out, err)
	}
	if res.Requests == 0 {
		return Row{}, errors.New("no request completed: " + res.FirstErr)
	}
	row := Row{Requests: res.Requests, Failures: res.Failures, PerSecond: res.PerSecond, P50: res.P50, P99: res.P99}
	if proxyPID != 0 {
		row.ProxyCPU = (cpu1 - cpu0) / time.Duration(res.Requests+20*cfg.Concurrency)
	}
	if ptotal1 > ptotal0 {
		row.ProxyBusy = float64(pbusy1-pbusy0) / float64(ptotal1-ptotal0)
	}
	if total1 > total0 {
		row.LoadBusy = float64(busy1-busy0) / float64(total1-total0)
		row.LoadCPU = time.Duration(busy1-busy0) * 10 * time.Millisecond / time.Duration(res.Requests+20*cfg.Concurrency)
	}
	return row, nil
}

// cpuBusy reads the busy and total clock ticks of one CPU (a single number, e.g. "1") from
// /proc/stat; zeros when unknown.
func cpuBusy(cpu string) (busy, total int64) {
	if _, err := strconv.Atoi(cpu); err != nil {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "cpu"+cpu {
			continue
		}
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i < 8 { // user nice system idle iowait irq softirq steal; guest time is inside user
				total += n
				if i != 3 && i != 4 {
					busy += n
				}
			}
		}
	}
	return busy, total
}

// cpuTime is the user+system CPU time of a process from /proc (clock ticks of 10ms); 0 if unknown.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Print writes the report as a table with the herd/HAProxy ratios.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "CPU placement: %s\n", r.Placement)
	fmt.Fprintf(w, "figures are medians of %d interleaved rounds; requests and failures are totals\n", r.Rounds)
	if r.Skipped != "" {
		fmt.Fprintf(w, "HAProxy skipped: %s\n", r.Skipped)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "size\ttarget\treq/s\tp50\tp99\tproxy CPU/req\tproxy core busy\tload CPU busy\tload CPU/req\tfailures")
	for _, row := range r.Rows {
		cpu := "-"
		if row.ProxyCPU > 0 {
			cpu = row.ProxyCPU.Round(100 * time.Nanosecond).String()
		}
		pbusy, busy, load := "-", "-", "-"
		if row.ProxyBusy > 0 {
			pbusy = fmt.Sprintf("%.0f%%", 100*row.ProxyBusy)
		}
		if row.LoadBusy > 0 {
			busy = fmt.Sprintf("%.0f%%", 100*row.LoadBusy)
			load = row.LoadCPU.Round(100 * time.Nanosecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%s\t%s\t%s\t%s\t%d\n", row.Size, row.Target, row.PerSecond,
			row.P50.Round(time.Microsecond), row.P99.Round(time.Microsecond), cpu, pbusy, busy, load, row.Failures)
	}
	_ = tw.Flush()
	for _, size := range []string{"small", "64k"} {
		h, x := r.Find(size, "herd"), r.Find(size, "haproxy")
		if h == nil || x == nil || x.PerSecond == 0 || x.P99 == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: herd/haproxy throughput %.2fx (goal >= 1.0), p99 %.2fx (goal <= 1.2)\n",
			size, h.PerSecond/x.PerSecond, float64(h.P99)/float64(x.P99))
	}
}
