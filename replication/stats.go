package replication

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of the replicator, for the manager API and the dashboard.
type Stats struct {
	Manager      string         `json:"manager"`
	Backups      int            `json:"backups,omitempty"`
	Mode         string         `json:"mode"`
	AckTimeoutMs int64          `json:"ackTimeoutMs"`
	AckPolicy    string         `json:"ackPolicy"`
	Ready        bool           `json:"ready"`
	Peers        []PeerStats    `json:"peers"`
	SyncWaits    uint64         `json:"syncWaits"`    // changes that waited for acks
	SyncFailures uint64         `json:"syncFailures"` // of which some peer did not ack in time
	SyncAvgMs    float64        `json:"syncAvgMs"`    // mean wait for acks
	Applied      uint64         `json:"applied"`      // changes received from peers and applied
	ApplyErrors  uint64         `json:"applyErrors"`
	BadMessages  uint64         `json:"badMessages"`
	Gaps         uint64         `json:"gaps"` // received changes that needed the whole session
	Fetches      uint64         `json:"fetches"`
	FetchHits    uint64         `json:"fetchHits"`
	Adopted      uint64         `json:"adopted"`    // sessions of a dead primary this node took over
	Rebalanced   uint64         `json:"rebalanced"` // whole sessions sent to restore backup copies
	Transfer     *TransferStats `json:"transfer,omitempty"`
	Served       uint64         `json:"transfersServed"`
	Resyncs      uint64         `json:"resyncs"` // pulls from peers that appeared after start-up
}

// PeerStats describes replication to one peer.
type PeerStats struct {
	Name      string  `json:"name"`
	Addr      string  `json:"addr"`
	Queue     int     `json:"queue"`    // changes waiting
	Resync    int     `json:"resync"`   // sessions waiting to be resent whole
	Sent      uint64  `json:"sent"`     // changes sent
	Acked     uint64  `json:"acked"`    // changes acknowledged
	Messages  uint64  `json:"messages"` // messages sent
	Bytes     uint64  `json:"bytes"`    // message bytes sent
	Failures  uint64  `json:"failures"`
	Dropped   uint64  `json:"dropped"` // changes dropped on a full queue
	LagMs     float64 `json:"lagMs"`   // queue-to-ack time of the last async batch
	LastError string  `json:"lastError,omitempty"`
}

// Stats returns the replicator's current figures.
func (r *Replicator) Stats() Stats {
	st := r.settings.Load()
	s := Stats{Manager: r.cfg.Manager, Mode: st.mode, AckTimeoutMs: st.ackTimeout.Milliseconds(),
		AckPolicy: st.policy, Ready: r.ready.Load(), Peers: []PeerStats{},
		SyncWaits: r.c.syncWaits.Load(), SyncFailures: r.c.syncFailures.Load(), Applied: r.c.applied.Load(),
		ApplyErrors: r.c.applyErrors.Load(), BadMessages: r.c.badMessages.Load(), Gaps: r.c.gaps.Load(),
		Fetches: r.c.fetches.Load(), FetchHits: r.c.fetchHits.Load(), Adopted: r.c.adopted.Load(),
		Rebalanced: r.c.rebalanced.Load(), Transfer: r.transfer.Load(), Served: r.c.transfersServed.Load(),
		Resyncs: r.c.resyncs.Load()}
	if r.cfg.Manager == ManagerBackup {
		s.Backups = r.cfg.Backups
	}
	if s.SyncWaits > 0 {
		s.SyncAvgMs = float64(r.c.syncNanos.Load()) / float64(s.SyncWaits) / 1e6
	}
	for _, p := range r.view.Load().peers {
		ps := PeerStats{Name: p.name, Addr: p.addr, Queue: len(p.queue), Resync: p.resyncLen(),
			Sent: p.sent.Load(), Acked: p.acked.Load(), Messages: p.batches.Load(), Bytes: p.bytes.Load(),
			Failures: p.failures.Load(), Dropped: p.dropped.Load(),
			LagMs: float64(p.lagNanos.Load()) / float64(time.Millisecond)}
		if e := p.lastErr.Load(); e != nil {
			ps.LastError = *e
		}
		s.Peers = append(s.Peers, ps)
	}
	return s
}

// collector exports Stats to Prometheus at scrape time.
type collector struct{ r *Replicator }

var (
	descMessages = prometheus.NewDesc("herd_replication_changes_sent_total", "Session changes sent to a peer.", []string{"peer"}, nil)
	descAcked    = prometheus.NewDesc("herd_replication_changes_acked_total", "Session changes a peer acknowledged.", []string{"peer"}, nil)
	descBytes    = prometheus.NewDesc("herd_replication_bytes_total", "Replication message bytes sent to a peer.", []string{"peer"}, nil)
	descFailures = prometheus.NewDesc("herd_replication_failures_total", "Failed sends to a peer.", []string{"peer"}, nil)
	descDropped  = prometheus.NewDesc("herd_replication_dropped_total", "Changes dropped on a full queue, per peer.", []string{"peer"}, nil)
	descQueue    = prometheus.NewDesc("herd_replication_queue_depth", "Changes waiting to be sent to a peer.", []string{"peer"}, nil)
	descLag      = prometheus.NewDesc("herd_replication_lag_seconds", "Queue-to-ack time of the last batch sent to a peer.", []string{"peer"}, nil)
	descApplied  = prometheus.NewDesc("herd_replication_applied_total", "Changes received from peers and applied.", nil, nil)
	descSyncFail = prometheus.NewDesc("herd_replication_ack_failures_total", "Changes that some peer did not acknowledge in time.", []string{"mode"}, nil)
	descPeers    = prometheus.NewDesc("herd_replication_peers", "Peers replicated to.", nil, nil)
)

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descAcked, descBytes, descFailures, descDropped, descQueue, descLag, descApplied, descSyncFail, descPeers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	for _, p := range s.Peers {
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(p.Sent), p.Name)
		ch <- prometheus.MustNewConstMetric(descAcked, prometheus.CounterValue, float64(p.Acked), p.Name)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(p.Bytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(p.Failures), p.Name)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(p.Dropped), p.Name)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(p.Queue), p.Name)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, p.LagMs/1000, p.Name)
	}
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.CounterValue, float64(s.Applied))
	ch <- prometheus.MustNewConstMetric(descSyncFail, prometheus.CounterValue, float64(s.SyncFailures), s.Mode)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(s.Peers)))
}
