package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsToken = "router-metrics-token-0123456789"

// metricValue returns the value of the counter, gauge or histogram count named name whose labels
// include want (a histogram answers its sample count); 0 when no such series exists yet.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// TestMetricsCountRetriesAndFailovers runs a sticky session on a real node, stops that node, and
// checks that the router counts the failed attempt, the retry, the failover, the failure mark and
// the requests; then that a request without a session retried on another node is a retry but no
// failover, and that /metrics is served behind the manager token.
func TestMetricsCountRetriesAndFailovers(t *testing.T) {
	n1 := staticNode(t, "node1")
	n2 := staticNode(t, "node2")
	a1, a2 := n1.Addr(), n2.Addr()
	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := startRouter(t, ln, nil, func(o *Options) {
		o.Settings.Backends = []string{a1, a2}
		o.Metrics, o.ManagerToken = reg, metricsToken
		// No active health check during the test: one that ran between node1's stop and alice's
		// request would take node1 out before her attempt, and the counts below would differ.
		o.Settings.HealthInterval = time.Hour
	})
	val := func(name string, labels ...string) float64 {
		t.Helper()
		want := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		return metricValue(t, reg, name, want)
	}

	// Two sessions on node1 (pinned there: a pin is never a failover).
	alice, bob := newClient(t), newClient(t)
	for _, c := range []*http.Client{alice, bob} {
		if code, node, body := get(t, c, r.url+"/counter/inc", "X-Herd-Node", a1); code != 200 || node != "node1" {
			t.Fatalf("pinned request: %d from %q: %s", code, node, body)
		}
	}
	if got := val("herd_router_failovers_total"); got != 0 {
		t.Fatalf("failovers after pinned requests = %v, want 0", got)
	}
	if got := val("herd_router_attempts_total", "node", a1, "result", "ok"); got != 2 {
		t.Fatalf("ok attempts on node1 = %v, want 2", got)
	}
	if got := val("herd_router_backends_active"); got != 2 {
		t.Fatalf("active backends = %v, want 2", got)
	}

	// node1 goes away: alice's sticky request fails to connect, is retried on node2, fails over.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = n1.Shutdown(ctx)
	cancel()
	if code, node, body := get(t, alice, r.url+"/counter/get"); code != 200 || node != "node2" {
		t.Fatalf("sticky request after node1 stopped: %d from %q: %s", code, node, body)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"herd_router_attempts_total", []string{"node", a1, "result", "error"}, 1},
		{"herd_router_attempts_total", []string{"node", a2, "result", "ok"}, 1},
		{"herd_router_retries_total", []string{"node", a1}, 1},
		{"herd_router_retries_total", []string{"node", a2}, 0},
		{"herd_router_failovers_total", []string{"from", a1, "to", a2}, 1},
		{"herd_router_ineligible_total", []string{"node", a1, "reason", "failure"}, 1},
		{"herd_router_backends_active", nil, 1},
		{"herd_router_backend_eligible", []string{"node", a1}, 0},
		{"herd_router_backends", []string{"status", "alive"}, 2},
	} {
		if got := val(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// bob's session fails over without a retry: node1 carries a failure mark, node2 takes it directly.
	if code, node, body := get(t, bob, r.url+"/counter/get"); code != 200 || node != "node2" {
		t.Fatalf("bob after node1 stopped: %d from %q: %s", code, node, body)
	}
	if got := val("herd_router_failovers_total", "from", a1, "to", a2); got != 2 {
		t.Errorf("failovers node1->node2 = %v, want 2", got)
	}
	if got := val("herd_router_retries_total"); got != 1 {
		t.Errorf("retries = %v, want still 1", got)
	}

	// Without a session: once the mark expires, round robin tries node1 again within two requests;
	// that is a retry (and a second marking), never a failover.
	for i := 0; i < 4 && val("herd_router_retries_total", "node", a1) < 2; i++ {
		r.clock.Advance(time.Minute)
		if code, node, body := get(t, newClient(t), r.url+"/counter/get"); code != 200 || node != "node2" {
			t.Fatalf("request without a session: %d from %q: %s", code, node, body)
		}
	}
	if got := val("herd_router_retries_total", "node", a1); got != 2 {
		t.Errorf("retries from node1 = %v, want 2", got)
	}
	if got := val("herd_router_ineligible_total", "node", a1, "reason", "failure"); got != 2 {
		t.Errorf("failure markings of node1 = %v, want 2", got)
	}
	if got := val("herd_router_failovers_total"); got != 2 {
		t.Errorf("failovers = %v, want still 2", got)
	}
	// Static backends serve any path: their requests are counted under the app "/".
	okRequests := val("herd_router_requests_total", "app", "/", "code", "200")
	if okRequests < 5 || val("herd_router_request_duration_seconds", "app", "/") != okRequests {
		t.Errorf("requests 200 = %v, latency samples = %v: want the same, at least 5", okRequests,
			val("herd_router_request_duration_seconds", "app", "/"))
	}

	// /metrics itself: answered by the router, behind the token, never routed to a node.
	before := val("herd_router_requests_total")
	for _, c := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusUnauthorized}, {"Bearer " + metricsToken, 200}} {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/metrics", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := newClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("GET /metrics with %q: %d, want %d: %s", c.auth, resp.StatusCode, c.want, body)
		}
		if c.want == 200 {
			for _, name := range []string{"herd_router_retries_total", "herd_router_failovers_total",
				"herd_router_requests_in_flight", `herd_router_backend_in_flight{node="` + a2 + `"}`} {
				if !strings.Contains(string(body), name) {
					t.Errorf("/metrics lacks %s", name)
				}
			}
		}
	}
	if got := val("herd_router_requests_total"); got != before {
		t.Errorf("/metrics scrapes were counted as routed requests: %v, then %v", before, got)
	}
}

// TestMetricsDisabledWithoutCredentials: a router without manager credentials refuses /metrics.
func TestMetricsDisabledWithoutCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := startRouter(t, ln, nil, nil)
	code, _, body := get(t, newClient(t), r.url+"/metrics")
	if code != http.StatusForbidden || !strings.Contains(body, "manager.token") {
		t.Fatalf("GET /metrics without configured credentials: %d %q, want 403 naming manager.token", code, body)
	}
}
