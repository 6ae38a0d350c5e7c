package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herdproject/herd/session"
	"github.com/herdproject/herd/valve"
)

// metrics are the node's HTTP and session instruments, registered on the node's own registry.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	sessEvent *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, sm *session.Manager, apps func() int) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_http_requests_total", Help: "HTTP requests served by the node, by app and status code.",
		}, []string{"app", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herd_http_request_duration_seconds", Help: "Time to serve a request, by app.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"app"}),
		sessEvent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_sessions_events_total", Help: "Session lifecycle events on this node (created, expired, invalidated).",
		}, []string{"event"}),
	}
	reg.MustRegister(m.requests, m.latency, m.sessEvent,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herd_sessions_active", Help: "Sessions held by this node (own and replicas)."},
			func() float64 { return float64(sm.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herd_apps_deployed", Help: "Apps deployed on this node."},
			func() float64 { return float64(apps()) }),
	)
	sm.Subscribe(func(d session.Delta) {
		switch d.Kind {
		case session.KindCreated, session.KindExpired, session.KindInvalidated:
			m.sessEvent.WithLabelValues(d.Kind.String()).Inc()
		}
	})
	return m
}

// valve records each request's count and duration; it depends on RequestID for Info.
func (m *metrics) valve() valve.Valve {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			info := valve.InfoFrom(r.Context())
			if info == nil {
				return
			}
			app := info.App
			if app == "" {
				app = "-" // node paths and 404s
			}
			status := info.Status
			if status == 0 {
				status = http.StatusOK
			}
			m.requests.WithLabelValues(app, strconv.Itoa(status)).Inc()
			m.latency.WithLabelValues(app).Observe(time.Since(info.Start).Seconds())
		})
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
