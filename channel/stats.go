package channel

import (
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a Channel's counters.
type Stats struct {
	Accepted          uint64 // connections accepted by the listener
	HandshakeFailures uint64 // handshakes that failed, both directions (refusals included)
	FrameErrors       uint64 // connections closed for a malformed, oversized or unauthentic frame
	// Peers holds traffic per authenticated member name, since New.
	Peers map[string]PeerStats
	// Pools holds the message pools per dialled address.
	Pools map[string]PoolStats
}

// PeerStats counts the traffic with one member, all its connections
// together (pooled, inbound and streams). Frames include keepalives.
type PeerStats struct {
	Conns      int    // open connections now
	SentFrames uint64 // frames written
	SentBytes  uint64 // bytes written after the handshake
	RecvFrames uint64 // frames read
	RecvBytes  uint64 // bytes read after the handshake
}

// PoolStats describes the pool of message connections to one address.
type PoolStats struct {
	Peer         string // member name the address answered with, "" before any dial succeeded
	Conns        int    // live pooled connections now
	Dials        uint64 // dial attempts
	DialFailures uint64 // failed dials, handshake failures included
	Reconnects   uint64 // successful dials of a slot that had a connection before
	LastError    string // the last dial failure, "" after a success
}

type channelCounters struct {
	accepted          atomic.Uint64
	handshakeFailures atomic.Uint64
	frameErrors       atomic.Uint64

	mu    sync.Mutex
	peers map[string]*peerCounters
}

type peerCounters struct {
	conns                 atomic.Int64
	sentFrames, sentBytes atomic.Uint64
	recvFrames, recvBytes atomic.Uint64
}

func (s *channelCounters) peer(name string) *peerCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[name]
	if p == nil {
		p = &peerCounters{}
		s.peers[name] = p
	}
	return p
}

func (p *peerCounters) sent(n int) {
	if p != nil {
		p.sentFrames.Add(1)
		p.sentBytes.Add(uint64(n))
	}
}

func (p *peerCounters) received(n int) {
	if p != nil {
		p.recvFrames.Add(1)
		p.recvBytes.Add(uint64(n))
	}
}

// Stats returns a snapshot of the counters.
func (ch *Channel) Stats() Stats {
	st := Stats{
		Accepted:          ch.stats.accepted.Load(),
		HandshakeFailures: ch.stats.handshakeFailures.Load(),
		FrameErrors:       ch.stats.frameErrors.Load(),
		Peers:             make(map[string]PeerStats),
		Pools:             make(map[string]PoolStats),
	}
	ch.stats.mu.Lock()
	for name, p := range ch.stats.peers {
		st.Peers[name] = PeerStats{
			Conns:      int(p.conns.Load()),
			SentFrames: p.sentFrames.Load(), SentBytes: p.sentBytes.Load(),
			RecvFrames: p.recvFrames.Load(), RecvBytes: p.recvBytes.Load(),
		}
	}
	ch.stats.mu.Unlock()
	ch.mu.Lock()
	pools := make([]*pool, 0, len(ch.pools))
	for _, p := range ch.pools {
		pools = append(pools, p)
	}
	ch.mu.Unlock()
	for _, p := range pools {
		st.Pools[p.addr] = p.stats()
	}
	return st
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := PoolStats{Peer: p.peer, Dials: p.dials, DialFailures: p.dialFailures, Reconnects: p.reconnects}
	if p.lastErr != nil {
		ps.LastError = p.lastErr.Error()
	}
	for _, s := range p.slots {
		if s.conn != nil && !s.conn.isClosed() {
			ps.Conns++
		}
	}
	return ps
}
