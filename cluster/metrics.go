package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdproject/herd/membership"
)

// clusterMetrics are the node's membership and farm instruments (replication registers its own).
type clusterMetrics struct {
	n      *Node
	events *prometheus.CounterVec
}

var (
	descMembers       = prometheus.NewDesc("herd_membership_members", "Live members in this node's view, by role and state.", []string{"role", "state"}, nil)
	descFarmEntries   = prometheus.NewDesc("herd_farm_ledger_entries", "Entries in the farm ledger (live bundles and removals).", []string{"kind"}, nil)
	descFarmTransfers = prometheus.NewDesc("herd_farm_transfers_total", "Farm bundle transfers finished, by result.", []string{"result"}, nil)
	descFarmBytes     = prometheus.NewDesc("herd_farm_bytes_total", "Farm bundle bytes moved, by direction.", []string{"direction"}, nil)
	descFarmActive    = prometheus.NewDesc("herd_farm_transfers_active", "Farm bundle transfers running now.", nil, nil)
	descFarmReady     = prometheus.NewDesc("herd_farm_ready", "1 once this node runs what the farm ledger says.", nil, nil)
	clusterDescs      = []*prometheus.Desc{descMembers, descFarmEntries, descFarmTransfers, descFarmBytes, descFarmActive, descFarmReady}
)

func newClusterMetrics(n *Node) *clusterMetrics {
	m := &clusterMetrics{n: n, events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herd_membership_events_total", Help: "Membership events this node saw (join, update, leave, dead).",
	}, []string{"type"})}
	n.metrics.MustRegister(m.events, m)
	return m
}

// Describe implements prometheus.Collector.
func (m *clusterMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range clusterDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *clusterMetrics) Collect(ch chan<- prometheus.Metric) {
	if p := m.n.provider(); p != nil {
		counts := map[[2]string]int{}
		for _, mb := range p.Members() {
			counts[[2]string{mb.Role.String(), mb.State.String()}]++
		}
		for k, v := range counts {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(v), k[0], k[1])
		}
	}
	f := m.n.farm.Load()
	if f == nil {
		return
	}
	st := f.Stats()
	ch <- prometheus.MustNewConstMetric(descFarmEntries, prometheus.GaugeValue, float64(st.Live), "live")
	ch <- prometheus.MustNewConstMetric(descFarmEntries, prometheus.GaugeValue, float64(st.Tombstones), "removed")
	ch <- prometheus.MustNewConstMetric(descFarmTransfers, prometheus.CounterValue, float64(st.TransfersOK), "ok")
	ch <- prometheus.MustNewConstMetric(descFarmTransfers, prometheus.CounterValue, float64(st.TransfersFailed), "failed")
	ch <- prometheus.MustNewConstMetric(descFarmBytes, prometheus.CounterValue, float64(st.BytesSent), "sent")
	ch <- prometheus.MustNewConstMetric(descFarmBytes, prometheus.CounterValue, float64(st.BytesReceived), "received")
	active := 0
	for _, t := range st.Transfers {
		if !t.Done {
			active++
		}
	}
	ch <- prometheus.MustNewConstMetric(descFarmActive, prometheus.GaugeValue, float64(active))
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descFarmReady, prometheus.GaugeValue, ready)
}

// event counts one membership event.
func (m *clusterMetrics) event(t membership.EventType) { m.events.WithLabelValues(t.String()).Inc() }
