package router

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMetricsPath is where the router serves its Prometheus metrics (Options.MetricsPath).
const DefaultMetricsPath = "/metrics"

// Reasons a node is marked ineligible for new sessions (label reason of
// herd_router_ineligible_total).
const (
	ineligibleFailure = "failure" // a request failed on it: skipped for RetryAfterFailure
	ineligibleHealth  = "health"  // it failed an active health check
)

// metrics are the router's Prometheus instruments. Label values are bounded: app is a context path
// some node announced (or "-"), node a backend of the table, code an HTTP status.
type metrics struct {
	reg        *prometheus.Registry
	handler    http.Handler
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	attempts   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	failovers  *prometheus.CounterVec
	ineligible *prometheus.CounterVec
}

func newMetrics(r *Router, reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_router_requests_total",
			Help: "Requests the router answered, by app context path and status code (499: the client went away).",
		}, []string{"app", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herd_router_request_duration_seconds",
			Help:    "Time from a request's arrival at the router to the end of its handling, by app context path.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"app"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_router_attempts_total",
			Help: "Attempts sent to a node, by node and result (ok: the node answered; error: it did not).",
		}, []string{"node", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_router_retries_total",
			Help: "Failed attempts retried on another node, by the node that failed.",
		}, []string{"node"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_router_failovers_total",
			Help: "Requests of a session sent to a node other than the session's own, by the session's node " +
				`(from; "gone" when it left the routing table) and the node that took the request (to).`,
		}, []string{"from", "to"}),
		ineligible: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_router_ineligible_total",
			Help: "Times a node was marked ineligible for new sessions, by node and reason (failure, health).",
		}, []string{"node", "reason"}),
	}
	reg.MustRegister(m.requests, m.latency, m.attempts, m.retries, m.failovers, m.ineligible,
		tableCollector{r},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herd_router_requests_in_flight", Help: "Requests (and upgraded connections) the router is handling.",
		}, func() float64 { return float64(r.active.Load()) }))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return m
}

// request records a finished request: its count by app and status, and its duration since start
// (wall time, whatever Options.Clock says).
func (m *metrics) request(st *reqState, start time.Time) {
	m.requestCached(st, start, nil)
}

// metricCache keeps the series one client connection used last: a connection's requests mostly go
// to one app, get one status and one node, and a series found again costs a hash of its labels and
// a map lookup. Series are never deleted, so a cached one stays the registered one.
type metricCache struct {
	app      string
	code     int
	requests prometheus.Counter
	latency  prometheus.Observer
	node     string
	ok       prometheus.Counter // attempts on node that succeeded
}

// requestCached is request with the series looked up through c (nil: no cache).
func (m *metrics) requestCached(st *reqState, start time.Time, c *metricCache) {
	app := "-"
	if st.pool.routes != nil {
		app = st.pool.routes.path
	}
	code := st.status
	if code == 0 {
		code = http.StatusOK
	}
	if c == nil {
		m.requests.WithLabelValues(app, codeLabel(code)).Inc()
		m.latency.WithLabelValues(app).Observe(time.Since(start).Seconds())
		return
	}
	if c.requests == nil || c.app != app || c.code != code {
		c.requests, c.code = m.requests.WithLabelValues(app, codeLabel(code)), code
	}
	if c.latency == nil || c.app != app {
		c.latency = m.latency.WithLabelValues(app)
	}
	c.app = app
	c.requests.Inc()
	c.latency.Observe(time.Since(start).Seconds())
}

// codeLabels are the status codes 100..599 as label values, made once (no allocation per request).
var codeLabels = func() (l [500]string) {
	for i := range l {
		l[i] = strconv.Itoa(100 + i)
	}
	return l
}()

func codeLabel(code int) string {
	if code >= 100 && code < 600 {
		return codeLabels[code-100]
	}
	return strconv.Itoa(code)
}

// attempt records one attempt on b and, the first time a request with a session goes to a node
// other than the session's own, a failover.
func (m *metrics) attempt(st *reqState, b *Backend, err error) {
	switch c := st.metrics; {
	case err != nil:
		m.attempts.WithLabelValues(b.Name, "error").Inc()
	case c == nil:
		m.attempts.WithLabelValues(b.Name, "ok").Inc()
	default:
		if c.ok == nil || c.node != b.Name {
			c.ok, c.node = m.attempts.WithLabelValues(b.Name, "ok"), b.Name
		}
		c.ok.Inc()
	}
	if st.failover || st.pool.Route == "" || st.pool.Pin != "" || b.Route == st.pool.Route {
		return
	}
	st.failover = true
	from := "gone"
	if own := st.pool.table.byRoute[st.pool.Route]; own != nil {
		from = own.Name
	}
	m.failovers.WithLabelValues(from, b.Name).Inc()
}

// retry records that the failed attempt on node is retried elsewhere.
func (m *metrics) retry(node string) { m.retries.WithLabelValues(node).Inc() }

// markIneligible records that node was marked ineligible for reason.
func (m *metrics) markIneligible(node, reason string) {
	m.ineligible.WithLabelValues(node, reason).Inc()
}

// tableCollector reports the current routing table at scrape time: backends by status, those that
// take new sessions now, and the requests in flight on each.
type tableCollector struct{ r *Router }

var (
	descBackends = prometheus.NewDesc("herd_router_backends",
		"Backends in the routing table, by status (alive, suspect, draining, leaving).", []string{"status"}, nil)
	descActive = prometheus.NewDesc("herd_router_backends_active",
		"Backends that take new sessions now: alive, healthy and without a failure mark.", nil, nil)
	descInflight = prometheus.NewDesc("herd_router_backend_in_flight",
		"Requests the router has open on a backend.", []string{"node"}, nil)
	descEligible = prometheus.NewDesc("herd_router_backend_eligible",
		"1 when the backend takes new sessions, else 0.", []string{"node"}, nil)
)

// Describe implements prometheus.Collector.
func (c tableCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBackends
	ch <- descActive
	ch <- descInflight
	ch <- descEligible
}

// Collect implements prometheus.Collector.
func (c tableCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.r.table.Load()
	now := c.r.now()
	byStatus := map[status]int{statusAlive: 0, statusSuspect: 0, statusDraining: 0, statusLeaving: 0}
	active := 0
	for _, b := range t.backends {
		byStatus[b.status]++
		eligible := b.status == statusAlive && !b.state.unhealthy.Load() && !b.state.failed(now)
		e := 0.0
		if eligible {
			active++
			e = 1
		}
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(b.Inflight()), b.Name)
		ch <- prometheus.MustNewConstMetric(descEligible, prometheus.GaugeValue, e, b.Name)
	}
	for s, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(descBackends, prometheus.GaugeValue, float64(n), s.String())
	}
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(active))
}

// managerAuth is the credentials that guard the router's own paths (/metrics): the manager section
// of the config, as on the nodes.
type managerAuth struct{ token, user, password string }

// SetManagerAuth replaces the credentials of the router's metrics endpoint (hot reload). With
// neither a token nor a user, the endpoint answers 403.
func (r *Router) SetManagerAuth(token, user, password string) {
	r.auth.Store(&managerAuth{token: token, user: user, password: password})
}

// serveMetrics answers the metrics path: Prometheus text behind the manager's Bearer token or basic
// auth.
func (r *Router) serveMetrics(w http.ResponseWriter, req *http.Request) {
	if !authorized(r.auth.Load(), w, req) {
		return
	}
	r.metrics.handler.ServeHTTP(w, req)
}

// authorized checks req against a (constant-time) and answers 403 or 401 when it fails.
func authorized(a *managerAuth, w http.ResponseWriter, req *http.Request) bool {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if a == nil || (a.token == "" && a.user == "") {
		http.Error(w, "router metrics disabled: set manager.token in the config", http.StatusForbidden)
		return false
	}
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && a.token != "" &&
		subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) == 1 {
		return true
	}
	if u, p, ok := req.BasicAuth(); ok && a.user != "" &&
		subtle.ConstantTimeCompare([]byte(u), []byte(a.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(a.password)) == 1 {
		return true
	}
	h.Set("WWW-Authenticate", `Bearer realm="herd manager"`)
	if a.user != "" {
		h.Add("WWW-Authenticate", `Basic realm="herd manager", charset="UTF-8"`)
	}
	http.Error(w, "router metrics: missing or wrong credentials", http.StatusUnauthorized)
	return false
}
