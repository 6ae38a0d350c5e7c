package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/loadgen"
	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/session/wire"
)

var nodeProfile = flag.String("herd.nodeprofile", "", "BenchmarkNodeOverhead writes the node's CPU profile during the c=1 run to this file")

// BenchmarkNodeOverhead measures the herd node's cost on a session request: `GET /counter/inc` of the
// sample counter app through a real `herd node` process (cookie, session lookup, header protocol,
// reverse proxy, commit), against the same app process hit directly with the session header the node
// would have sent. Each client keeps its own session. It prints requests/s, p50 and p99 of both and
// the ratios. Run: go test -run '^$' -bench NodeOverhead -benchtime 1x ./cmd/herd
func BenchmarkNodeOverhead(b *testing.B) {
	dir, addr := nodeDir(b, "node1", "")
	if err := os.MkdirAll(filepath.Join(dir, "webapps"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(testapps.Bundle(b, "counter", "counter.zip"), filepath.Join(dir, "webapps", "counter.zip")); err != nil {
		b.Fatal(err)
	}
	startHerd(b, dir, "node", "--config", "herd.yaml")
	base := "http://" + addr
	waitHTTP(b, base+"/readyz", func(s int, _ string) bool { return s == 200 })
	appAddr := fmt.Sprintf("127.0.0.1:%d", counterPort(b, base))

	view := wire.SessionView{ID: "benchbenchbenchbenchbenchbench01", Created: time.Now(), LastAccess: time.Now(),
		MaxInactive: 30 * time.Minute, Attrs: map[string][]byte{}}
	hdr, err := wire.EncodeRequest(view)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	run := func(name string, conc int, o loadgen.Options) loadgen.Result {
		o.Concurrency, o.Duration, o.Warmup = conc, 3*time.Second, 20
		res, err := loadgen.Run(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		if res.Failures > 0 {
			b.Fatalf("%s: %d failures, first: %v", name, res.Failures, res.FirstErr)
		}
		fmt.Printf("%-22s %s\n", name, res)
		return res
	}
	direct := func(int) (*http.Request, error) {
		req, err := http.NewRequest("GET", "http://"+appAddr+"/counter/inc", nil)
		if err == nil {
			req.Header.Set(wire.RequestHeader, hdr)
		}
		return req, err
	}
	// A bare httputil.ReverseProxy in this process, for reference: the cost of any proxy hop.
	target, _ := url.Parse("http://" + appAddr)
	plain := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer plain.Close()
	viaPlain := func(int) (*http.Request, error) {
		req, err := http.NewRequest("GET", plain.URL+"/counter/inc", nil)
		if err == nil {
			req.Header.Set(wire.RequestHeader, hdr)
		}
		return req, err
	}
	// HAProxy in front of the app, when it is installed: the leanest proxy hop there is, the floor
	// of what any proxy adds on this machine.
	hapURL := startHAProxyFor(b, appAddr)
	viaHAProxy := func(int) (*http.Request, error) {
		req, err := http.NewRequest("GET", hapURL+"/counter/inc", nil)
		if err == nil {
			req.Header.Set(wire.RequestHeader, hdr)
		}
		return req, err
	}
	for i := 0; i < b.N; i++ {
		// One client at a time measures the latency the node adds; eight saturate both cores and
		// measure the CPU the node spends per request.
		for _, conc := range []int{1, 8} {
			d := run(fmt.Sprintf("direct to app, c=%d", conc), conc, loadgen.Options{NewRequest: direct})
			if hapURL != "" {
				h := run(fmt.Sprintf("haproxy,       c=%d", conc), conc, loadgen.Options{NewRequest: viaHAProxy})
				fmt.Printf("c=%d haproxy/direct: throughput %.2fx, p50 %.2fx, p99 %.2fx\n", conc,
					h.PerSecond/d.PerSecond, float64(h.P50)/float64(d.P50), float64(h.P99)/float64(d.P99))
				b.ReportMetric(float64(h.P50)/float64(d.P50), fmt.Sprintf("haproxy-p50-ratio-c%d", conc))
			}
			p := run(fmt.Sprintf("bare Go proxy, c=%d", conc), conc, loadgen.Options{NewRequest: viaPlain})
			prof := make(chan error, 1)
			if *nodeProfile != "" && conc == 1 {
				go func() { prof <- saveProfile(base+"/manager/debug/pprof/profile?seconds=2", *nodeProfile) }()
			} else {
				prof <- nil
			}
			v := run(fmt.Sprintf("through node,  c=%d", conc), conc, loadgen.Options{URL: base + "/counter/inc", Cookies: true})
			if err := <-prof; err != nil {
				b.Fatal(err)
			}
			fmt.Printf("c=%d bare-proxy/direct: throughput %.2fx, p50 %.2fx, p99 %.2fx\n", conc,
				p.PerSecond/d.PerSecond, float64(p.P50)/float64(d.P50), float64(p.P99)/float64(d.P99))
			fmt.Printf("c=%d node/direct: throughput %.2fx, p50 %.2fx, p99 %.2fx\n", conc,
				v.PerSecond/d.PerSecond, float64(v.P50)/float64(d.P50), float64(v.P99)/float64(d.P99))
			b.ReportMetric(float64(v.P50)/float64(d.P50), fmt.Sprintf("p50-ratio-c%d", conc))
			b.ReportMetric(float64(v.P99)/float64(d.P99), fmt.Sprintf("p99-ratio-c%d", conc))
			b.ReportMetric(v.PerSecond/d.PerSecond, fmt.Sprintf("rps-ratio-c%d", conc))
		}
	}
}

// startHAProxyFor runs HAProxy (one thread, keep-alive to the app) in front of addr and returns its
// base URL, or "" when haproxy is not installed. It stops when the benchmark ends.
func startHAProxyFor(b *testing.B, addr string) string {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		b.Log("haproxy is not installed: no HAProxy row (apt-get install -y haproxy)")
		return ""
	}
	port := freePort(b)
	cfg := fmt.Sprintf(`global
    nbthread 1
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:%d
    default_backend app
backend app
    server app %s
`, port, addr)
	file := filepath.Join(b.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", file, "-db")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(b, url+"/counter/get", func(int, string) bool { return true })
	return url
}

// saveProfile fetches a pprof profile from the node's manager API into file.
func saveProfile(url, file string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
