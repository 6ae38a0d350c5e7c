package multicast

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/membership"
)

// receiveLoop reads datagrams until the socket is closed by Shutdown.
func (p *Provider) receiveLoop() {
	defer p.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		n, src, err := p.socks.recv.ReadFrom(buf)
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.logger.Warn("multicast.read_error", slog.Any("error", err))
			continue
		}
		p.stats.received.Add(1)
		p.handle(buf[:n], src)
	}
}

// handle authenticates one datagram and applies it. It never panics on
// hostile input and never blocks on event consumers.
func (p *Provider) handle(b []byte, src net.Addr) {
	pk, err := decodePacket(b, p.cfg.Cluster, p.key)
	switch {
	case errors.Is(err, errForeign):
		p.drop(&p.stats.foreign, "foreign_cluster", src, err)
		return
	case errors.Is(err, errBadMAC):
		p.drop(&p.stats.badMAC, "bad_mac", src, err)
		return
	case err != nil:
		p.drop(&p.stats.malformed, "malformed", src, err)
		return
	}
	now := p.now()
	if skew := now.Sub(time.Unix(0, pk.ts)); skew > p.cfg.MaxClockSkew || skew < -p.cfg.MaxClockSkew {
		p.drop(&p.stats.stale, "stale", src, errors.New("timestamp outside the clock-skew window"))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := pk.rec.Member
	if m.Name == p.local.Name {
		if m.Incarnation != p.local.Incarnation {
			p.drop(&p.stats.conflict, "name_conflict", src, errors.New("another member uses this name"))
		}
		return // our own packet, looped back
	}
	evs, v := p.roster.observe(pk, now)
	switch v {
	case replayed:
		p.drop(&p.stats.replayed, "replayed", src, errors.New("sequence number not newer"))
	case oldIncarnation:
		p.drop(&p.stats.oldInc, "old_incarnation", src, errors.New("incarnation older than known"))
	case accepted:
		p.stats.accepted.Add(1)
	}
	p.publishLocked(evs)
	for _, ev := range evs {
		if ev.Type == membership.EventJoin {
			p.kickLocked() // let the newcomer hear us now, not a Frequency later
			break
		}
	}
}

// kickLocked asks the heartbeat loop for an immediate heartbeat.
func (p *Provider) kickLocked() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Provider) publishLocked(evs []membership.Event) {
	for _, ev := range evs {
		p.logger.Info("multicast.member_"+ev.Type.String(), slog.String("peer", ev.Member.Name),
			slog.Uint64("incarnation", ev.Member.Incarnation), slog.String("http", ev.Member.HTTPAddr))
	}
	p.hub.Publish(evs...)
}

// drop counts a dropped packet; it logs the first of each kind at Warn and
// the rest at Debug, so a flood cannot flood the log.
func (p *Provider) drop(c *atomic.Uint64, reason string, src net.Addr, err error) {
	n := c.Add(1)
	level := slog.LevelDebug
	if n == 1 || n%10000 == 0 {
		level = slog.LevelWarn
	}
	p.logger.Log(p.ctx, level, "multicast.packet_dropped", slog.String("reason", reason),
		slog.Any("from", src), slog.Uint64("count", n), slog.Any("error", err))
}

// heartbeatLoop sends a heartbeat at start, every Frequency, and at once
// after UpdateLocal, until Leave or Shutdown.
func (p *Provider) heartbeatLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.Frequency)
	defer t.Stop()
	for {
		p.mu.Lock()
		left := p.left
		p.mu.Unlock()
		if !left {
			_ = p.send(kindHeartbeat)
		}
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// reapLoop declares silent members dead, checking four times per Frequency.
func (p *Provider) reapLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.Frequency / 4)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.publishLocked(p.roster.reap(p.now()))
		p.mu.Unlock()
	}
}

// send signs and sends one packet with the next sequence number.
func (p *Provider) send(k kind) error {
	p.mu.Lock()
	p.seq++
	b := encodePacket(k, p.cfg.Cluster, p.seq, p.now().UnixNano(), p.record, p.key)
	socks := p.socks
	p.mu.Unlock()
	if _, err := socks.send.WriteTo(b, socks.group); err != nil {
		p.stats.sendErrors.Add(1)
		if p.ctx.Err() == nil {
			p.logger.Warn("multicast.send_error", slog.Any("error", err))
		}
		return err
	}
	p.stats.sent.Add(1)
	return nil
}
