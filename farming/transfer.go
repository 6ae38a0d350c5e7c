package farming

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
)

// bundleRef names a bundle: the body of a fetch request and the header of a bundle stream.
type bundleRef struct {
	SHA256 string `msgpack:"h"`
	File   string `msgpack:"f"`
	Size   int64  `msgpack:"s"`
}

func (r bundleRef) validate(maxSize int64) error {
	if !isSHA256(r.SHA256) {
		return fmt.Errorf("farming: bundle ref: sha256 %q is not 64 lowercase hex digits", truncate(r.SHA256, 80))
	}
	if _, err := bundle.ParseFileName(r.File); err != nil {
		return fmt.Errorf("farming: bundle ref: %w", err)
	}
	if r.Size < 0 || r.Size > maxSize {
		return fmt.Errorf("farming: bundle ref %s: size %d is outside 0..%d", r.File, r.Size, maxSize)
	}
	return nil
}

func decodeRef(b []byte, maxSize int64) (bundleRef, error) {
	var r bundleRef
	if err := channel.Decode(b, &r); err != nil {
		return bundleRef{}, fmt.Errorf("farming: bundle ref: %w", err)
	}
	return r, r.validate(maxSize)
}

// ErrNotHeld is the error a member answers a fetch for a bundle it does not hold.
var ErrNotHeld = errors.New("bundle not held here")

// pending is a fetch waiting for the holder's stream.
type pending struct {
	ref  bundleRef
	from string // the holder asked

	last atomic.Int64 // unix nanos of the last sign of life (request, stream start, bytes)
	once sync.Once
	done chan struct{}
	err  error // valid once done is closed
}

func (p *pending) touch() { p.last.Store(time.Now().UnixNano()) }

func (p *pending) finish(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
	})
}

// handleFetch answers a peer that wants a bundle: if it is held here, a goroutine streams it.
func (m *Manager) handleFetch(_ context.Context, from string, msg channel.Message) ([]byte, error) {
	if m.closed() {
		return nil, ErrClosed
	}
	ref, err := decodeRef(msg.Body, m.cfg.MaxBundleSize)
	if err != nil {
		return nil, err
	}
	if !m.store.has(ref.SHA256, ref.File, ref.Size) {
		return nil, fmt.Errorf("farming: %s (sha256 %s): %w", ref.File, short(ref.SHA256), ErrNotHeld)
	}
	addr := m.memberAddr(from)
	if addr == "" {
		return nil, fmt.Errorf("farming: fetch from %q refused: not a live member with a channel address", from)
	}
	if !m.goFunc(func() { m.send(from, addr, ref) }) {
		return nil, ErrClosed
	}
	return nil, nil
}

// send streams a stored bundle to a peer.
func (m *Manager) send(peer, addr string, ref bundleRef) {
	tr := m.xfers.start("send", peer, ref)
	err := m.sendStream(peer, addr, ref, tr)
	m.finishTransfer(tr, err)
}

func (m *Manager) sendStream(peer, addr string, ref bundleRef, tr *transfer) error {
	f, err := os.Open(m.store.path(ref.SHA256, ref.File))
	if err != nil {
		return err
	}
	defer f.Close()
	hdr, err := channel.Encode(ref)
	if err != nil {
		return err
	}
	st, err := m.ch.OpenStream(m.ctx, addr, channel.Message{Type: msgBundle, Body: hdr})
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	var sent int64
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if _, err := st.Write(buf[:n]); err != nil {
				_ = st.Abort()
				return err
			}
			sent += int64(n)
			m.progress(tr, sent)
			if h := m.sendHook.Load(); h != nil {
				(*h)(peer, sent)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = st.Abort()
			return rerr
		}
	}
	return st.Close()
}

// handleBundleStream receives a bundle this member asked for, into the store.
func (m *Manager) handleBundleStream(_ context.Context, from string, msg channel.Message, r io.Reader) error {
	ref, err := decodeRef(msg.Body, m.cfg.MaxBundleSize)
	if err != nil {
		return err
	}
	m.mu.Lock()
	p := m.pending[ref.SHA256]
	closed := m.state == stateClosed
	m.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case p == nil || p.from != from || p.ref.File != ref.File || p.ref.Size != ref.Size:
		return fmt.Errorf("farming: unsolicited transfer of %s from %s refused", ref.File, from)
	}
	p.touch()
	tr := m.xfers.start("receive", from, ref)
	err = m.store.put(r, ref.SHA256, ref.File, ref.Size, func(n int64) {
		p.touch()
		m.progress(tr, n)
	})
	m.finishTransfer(tr, err)
	if err != nil {
		err = fmt.Errorf("farming: receive %s from %s: %w", ref.File, from, err)
	}
	p.finish(err)
	return err
}

// fetch gets the bundle of e from a member that holds it: the origin first, then the others.
func (m *Manager) fetch(e Entry) error {
	peers := m.peers()
	slices.SortStableFunc(peers, func(a, b membership.Member) int {
		switch {
		case a.Name == e.Origin:
			return -1
		case b.Name == e.Origin:
			return 1
		}
		return 0
	})
	if len(peers) == 0 {
		return fmt.Errorf("farming: %s: no live member to fetch it from", e.File)
	}
	var errs []error
	for _, p := range peers {
		err := m.fetchFrom(p, e)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", p.Name, err))
		if m.ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("farming: fetch %s (sha256 %s): %w", e.File, short(e.SHA256), errors.Join(errs...))
}

// fetchFrom asks one holder for the bundle and waits for its stream to complete.
func (m *Manager) fetchFrom(holder membership.Member, e Entry) error {
	ref := bundleRef{SHA256: e.SHA256, File: e.File, Size: e.Size}
	p := &pending{ref: ref, from: holder.Name, done: make(chan struct{})}
	p.touch()
	m.mu.Lock()
	if m.state == stateClosed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.pending[ref.SHA256] = p
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.pending[ref.SHA256] == p {
			delete(m.pending, ref.SHA256)
		}
		m.mu.Unlock()
	}()
	body, err := channel.Encode(ref)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.StallTimeout)
	_, err = m.ch.Request(ctx, holder.ChannelAddr, channel.Message{Type: msgFetch, Body: body})
	cancel()
	if err != nil {
		return err
	}
	tick := time.NewTicker(min(m.cfg.StallTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return p.err
		case <-m.ctx.Done():
			return ErrClosed
		case <-tick.C:
			if idle := time.Since(time.Unix(0, p.last.Load())); idle > m.cfg.StallTimeout {
				err := fmt.Errorf("transfer stalled: nothing for %s", idle.Round(time.Millisecond))
				p.finish(err)
				return err
			}
		}
	}
}

// Transfer describes one bundle transfer, running or recently finished.
type Transfer struct {
	ID        uint64    `json:"id"`
	Direction string    `json:"direction"` // "send" or "receive"
	Peer      string    `json:"peer"`
	File      string    `json:"file"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	Bytes     int64     `json:"bytes"`
	Percent   float64   `json:"percent"`
	Rate      float64   `json:"bytesPerSecond"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
	Done      bool      `json:"done"`
	Err       string    `json:"error,omitempty"`
}

type transfer struct {
	Transfer
	bytes   atomic.Int64
	lastLog atomic.Int64 // unix nanos
}

func (t *transfer) snapshot(now time.Time) Transfer {
	out := t.Transfer
	out.Bytes = t.bytes.Load()
	end := now
	if out.Done {
		end = out.Finished
	}
	if el := end.Sub(out.Started).Seconds(); el > 0 {
		out.Rate = float64(out.Bytes) / el
	}
	if out.Size > 0 {
		out.Percent = 100 * float64(out.Bytes) / float64(out.Size)
	} else if out.Done && out.Err == "" {
		out.Percent = 100
	}
	return out
}

// keepFinished is how many finished transfers Transfers still lists.
const keepFinished = 32

// transfers tracks running and recent transfers, and totals.
type transfers struct {
	mu       sync.Mutex
	seq      uint64
	active   map[uint64]*transfer
	finished []Transfer
	okCount  uint64
	failures uint64
	sent     int64
	received int64
}

func (x *transfers) init() { x.active = map[uint64]*transfer{} }

func (x *transfers) start(dir, peer string, ref bundleRef) *transfer {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq++
	t := &transfer{Transfer: Transfer{ID: x.seq, Direction: dir, Peer: peer, File: ref.File, SHA256: ref.SHA256,
		Size: ref.Size, Started: time.Now()}}
	t.lastLog.Store(t.Started.UnixNano())
	x.active[t.ID] = t
	return t
}

func (x *transfers) list() []Transfer {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	out := make([]Transfer, 0, len(x.active)+len(x.finished))
	for _, t := range x.active {
		out = append(out, t.snapshot(now))
	}
	out = append(out, x.finished...)
	slices.SortFunc(out, func(a, b Transfer) int { return cmp.Compare(b.ID, a.ID) })
	return out
}

// progress records the bytes moved and logs the progress of a transfer at most once a second.
func (m *Manager) progress(t *transfer, n int64) {
	t.bytes.Store(n)
	now := time.Now()
	last := t.lastLog.Load()
	if now.UnixNano()-last < int64(time.Second) || !t.lastLog.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	s := t.snapshot(now)
	m.log.Info("bundle transfer", "event", "farm.transfer_progress", "direction", s.Direction, "peer", s.Peer,
		"bundle", s.File, "bytes", s.Bytes, "size", s.Size, "percent", fmt.Sprintf("%.1f", s.Percent),
		"rate_mib_s", fmt.Sprintf("%.1f", s.Rate/(1<<20)))
}

func (m *Manager) finishTransfer(t *transfer, err error) {
	x := &m.xfers
	x.mu.Lock()
	delete(x.active, t.ID)
	t.Done, t.Finished = true, time.Now()
	if err != nil {
		t.Err = err.Error()
		x.failures++
	} else {
		x.okCount++
	}
	n := t.bytes.Load()
	if t.Direction == "send" {
		x.sent += n
	} else {
		x.received += n
	}
	s := t.snapshot(t.Finished)
	x.finished = append(x.finished, s)
	if len(x.finished) > keepFinished {
		x.finished = slices.Delete(x.finished, 0, len(x.finished)-keepFinished)
	}
	x.mu.Unlock()
	attrs := []any{"event", "farm.transfer_done", "direction", s.Direction, "peer", s.Peer, "bundle", s.File,
		"bytes", s.Bytes, "size", s.Size, "took", s.Finished.Sub(s.Started).Round(time.Millisecond),
		"rate_mib_s", fmt.Sprintf("%.1f", s.Rate/(1<<20))}
	if err != nil {
		m.log.Warn("bundle transfer failed", append(attrs, "err", err)...)
		return
	}
	m.log.Info("bundle transfer done", attrs...)
}

// Transfers lists the running transfers and the last finished ones, newest first.
func (m *Manager) Transfers() []Transfer { return m.xfers.list() }
