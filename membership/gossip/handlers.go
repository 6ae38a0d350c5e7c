package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

// nodeMeta returns the local record for memberlist's meta.
func (p *Provider) nodeMeta(limit int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.meta) > limit { // cannot happen: setLocalLocked enforces MetaMaxSize
		p.logger.Error("gossip.meta_too_large", slog.Int("size", len(p.meta)), slog.Int("limit", limit))
		return nil
	}
	return slices.Clone(p.meta)
}

// localState returns the full record for push/pull when meta is compact.
func (p *Provider) localState() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.partial {
		return nil
	}
	return encodeMsg(p.full)
}

// handleMsg applies a full record received from a peer.
func (p *Provider) handleMsg(b []byte) {
	if len(b) == 0 {
		return // push/pull from a peer whose record fits in meta
	}
	rec, err := decodeMsg(b)
	if err == nil && rec.Cluster != p.cfg.Cluster {
		err = fmt.Errorf("%w: %q", errForeignCluster, rec.Cluster)
	}
	if err != nil {
		p.stats.badMessages.Add(1)
		p.logger.Warn("gossip.bad_message", slog.Any("error", err))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publishLocked(p.table.full(rec, p.now()))
}

// admit is the alive/merge hook: only valid records of this cluster whose
// name matches the memberlist node name get in.
func (p *Provider) admit(n *memberlist.Node) error {
	rec, err := wire.Decode(n.Meta)
	switch {
	case err != nil:
	case rec.Cluster != p.cfg.Cluster:
		err = fmt.Errorf("%w: %s is in cluster %q", errForeignCluster, n.Name, rec.Cluster)
	case rec.Member.Name != n.Name:
		err = fmt.Errorf("%w: node %q, record %q", errNameMismatch, n.Name, rec.Member.Name)
	}
	if err != nil {
		if c := p.stats.refused.Add(1); c == 1 || c%1000 == 0 {
			p.logger.Warn("gossip.refused", slog.String("node", n.Name), slog.Uint64("count", c), slog.Any("error", err))
		}
		return err
	}
	return nil
}

// nodeAlive applies memberlist's join or update of a node. It runs under
// memberlist's node lock: it must not block or call memberlist.
func (p *Provider) nodeAlive(n *memberlist.Node) {
	if n.Name == p.name {
		return
	}
	rec, err := wire.Decode(n.Meta)
	if err != nil {
		p.logger.Warn("gossip.bad_meta", slog.String("node", n.Name), slog.Any("error", err))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	evs := p.table.alive(rec, n.Addr, n.Port, p.now())
	p.publishLocked(evs)
	if p.partial {
		for _, ev := range evs {
			if ev.Type == membership.EventJoin {
				p.pushLocked(p.table.peers[ev.Member.Name])
			}
		}
	}
}

// nodeGone applies memberlist's leave or death of a node.
func (p *Provider) nodeGone(n *memberlist.Node) {
	if n.Name == p.name {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publishLocked(p.table.gone(n.Name))
}

// heard notes an acked probe.
func (p *Provider) heard(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.table.heard(name, p.now())
}

func (p *Provider) publishLocked(evs []membership.Event) {
	for _, ev := range evs {
		p.logger.Info("gossip.member_"+ev.Type.String(), slog.String("peer", ev.Member.Name),
			slog.Uint64("incarnation", ev.Member.Incarnation), slog.String("http", ev.Member.HTTPAddr))
	}
	p.hub.Publish(evs...)
}

// pushLocked queues the full local record for one peer, never blocking.
func (p *Provider) pushLocked(pe *peer) {
	if pe == nil {
		return
	}
	job := sendJob{to: memberlist.Node{Name: pe.meta.Member.Name, Addr: slices.Clone(pe.addr), Port: pe.port},
		msg: encodeMsg(p.full)}
	select {
	case p.sendq <- job:
	default:
		p.stats.sendErrors.Add(1)
	}
}

// sendLoop delivers queued full-record pushes over memberlist's TCP.
func (p *Provider) sendLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case job := <-p.sendq:
			if err := p.ml.SendReliable(&job.to, job.msg); err != nil {
				p.stats.sendErrors.Add(1)
				p.logger.Debug("gossip.push_failed", slog.String("peer", job.to.Name), slog.Any("error", err))
				continue
			}
			p.stats.recordsSent.Add(1)
		}
	}
}

// rejoinLoop re-resolves the seeds every RejoinInterval and joins those
// that are not live members: it heals partitions and finds new pods behind a
// DNS name.
func (p *Provider) rejoinLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		left := p.left
		p.mu.Unlock()
		if !left {
			p.joinSeeds(p.ctx)
		}
	}
}

// joinSeeds joins every seed address that is neither this member nor a
// live peer.
func (p *Provider) joinSeeds(ctx context.Context) {
	addrs := p.resolveSeeds(ctx)
	p.mu.Lock()
	known := p.table.addrs()
	self := p.addr
	ml := p.ml
	p.mu.Unlock()
	var missing []string
	for _, a := range addrs {
		if a != self && !known[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 || ctx.Err() != nil {
		return
	}
	p.stats.joinAttempts.Add(1)
	n, err := ml.Join(missing)
	if n == 0 {
		c := p.stats.joinFailures.Add(1)
		level := slog.LevelDebug
		if c == 1 {
			level = slog.LevelWarn
		}
		p.logger.Log(ctx, level, "gossip.join_failed", slog.Any("seeds", missing), slog.Uint64("failures", c), slog.Any("error", err))
		return
	}
	p.logger.Debug("gossip.joined", slog.Any("seeds", missing), slog.Int("reached", n))
}

// resolveSeeds turns Seeds into "ip:port" strings, resolving host names
// with the Resolver (bounded by TCPTimeout).
func (p *Provider) resolveSeeds(ctx context.Context) []string {
	defPort := DefaultPort
	if _, port, _ := splitIPPort(p.cfg.BindAddr, true); port != 0 {
		defPort = port
	}
	var out []string
	for _, s := range p.cfg.Seeds {
		host, port, err := parseSeed(s, defPort)
		if err != nil { // Validate rejects these
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			out = append(out, net.JoinHostPort(ip.String(), itoa(port)))
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, p.cfg.TCPTimeout)
		ips, err := p.resolver.LookupHost(lctx, host)
		cancel()
		if err != nil {
			p.logger.Debug("gossip.resolve_failed", slog.String("seed", s), slog.Any("error", err))
			continue
		}
		for _, ip := range ips {
			if parsed := net.ParseIP(ip); parsed != nil {
				out = append(out, net.JoinHostPort(parsed.String(), itoa(port)))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// netResolver is the default Resolver.
type netResolver struct{}

func (netResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}
