package farming

import (
	"slices"
	"time"
)

// Stats is a snapshot of the farm for the manager API and the dashboard.
type Stats struct {
	Ready      bool   `json:"ready"`
	Synced     bool   `json:"synced"`
	Digest     string `json:"digest"`
	Entries    int    `json:"entries"`
	Live       int    `json:"live"`
	Tombstones int    `json:"tombstones"`
	// Deployed lists the keys farming runs on this member.
	Deployed []string `json:"deployed"`
	// Failures are bundles refused on this member (deploy or signature), by key.
	Failures []Failure `json:"failures,omitempty"`
	// Errors are the last transient errors (fetches) and watch directory refusals ("watch:<file>").
	Errors map[string]string `json:"errors,omitempty"`
	// Conflicts maps keys left undeployed to the app name that owns their context.
	Conflicts map[string]string `json:"conflicts,omitempty"`
	// Transfers lists the running transfers and the last finished ones, newest first.
	Transfers       []Transfer `json:"transfers"`
	TransfersOK     uint64     `json:"transfersOk"`
	TransfersFailed uint64     `json:"transfersFailed"`
	BytesSent       int64      `json:"bytesSent"`
	BytesReceived   int64      `json:"bytesReceived"`
	SaveError       string     `json:"saveError,omitempty"`
}

// Failure is a bundle this member refused.
type Failure struct {
	Key    string    `json:"key"`
	SHA256 string    `json:"sha256"`
	Err    string    `json:"error"`
	At     time.Time `json:"at"`
}

// Stats returns a snapshot of the farm.
func (m *Manager) Stats() Stats {
	s := Stats{Ready: m.ready.Load(), Synced: m.synced.Load(), Transfers: m.xfers.list()}
	m.xfers.mu.Lock()
	s.TransfersOK, s.TransfersFailed = m.xfers.okCount, m.xfers.failures
	s.BytesSent, s.BytesReceived = m.xfers.sent, m.xfers.received
	m.xfers.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Digest = m.led.digest()
	s.Entries = len(m.led.entries)
	s.Live = m.led.live()
	s.Tombstones = s.Entries - s.Live
	s.Deployed = sortedKeys(m.farmed)
	for _, k := range sortedKeys(m.failed) {
		f := m.failed[k]
		s.Failures = append(s.Failures, Failure{Key: k, SHA256: f.SHA256, Err: f.Err, At: f.At})
	}
	if len(m.errs) > 0 {
		s.Errors = map[string]string{}
		for k, v := range m.errs {
			s.Errors[k] = v
		}
	}
	if len(m.conflict) > 0 {
		s.Conflicts = map[string]string{}
		for k, v := range m.conflict {
			s.Conflicts[k] = v
		}
	}
	if m.saveErr != nil {
		s.SaveError = m.saveErr.Error()
	}
	s.Failures = slices.Clip(s.Failures)
	return s
}
