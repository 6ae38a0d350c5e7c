package replication

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/session"
)

// maxResync bounds the sessions remembered for a whole-state resend to one peer.
const maxResync = 100000

// item is one queued change: the session id and its encoded delta.
type item struct {
	id  string
	enc []byte
	at  int64 // enqueue time, unix nanoseconds
}

// peer is one live member the replicator sends to. Its sender goroutine drains the queue (async
// changes, touches, expiries, rebalancing) in order, in batches; synchronous changes go directly,
// limited by a semaphore per mode.
type peer struct {
	r           *Replicator
	name, addr  string
	incarnation uint64
	queue       chan item
	kick        chan struct{}
	ctx         context.Context
	cancel      context.CancelFunc
	done        chan struct{}

	resyncMu sync.Mutex
	resync   map[string]struct{} // sessions to send whole (a dropped or failed change)

	gcMu       sync.Mutex   // group commit of synchronous changes
	gcInflight int          // messages in flight
	gcQueue    []*syncBatch // batches waiting for a free slot, oldest first
	gcPending  *syncBatch   // the batch new changes join (the newest in gcQueue)

	sent, batches, bytes, acked, failures, dropped atomic.Uint64
	lagNanos                                       atomic.Int64 // enqueue-to-ack time of the last batch
	lastErr                                        atomic.Pointer[string]
	warnedAt                                       atomic.Int64
}

func (r *Replicator) newPeer(m membership.Member) *peer {
	p := &peer{r: r, name: m.Name, addr: m.ChannelAddr, incarnation: m.Incarnation,
		queue: make(chan item, r.cfg.QueueSize), kick: make(chan struct{}, 1),
		done: make(chan struct{}), resync: map[string]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(r.ctx)
	if !r.goFunc(func() {
		defer close(p.done)
		p.run()
	}) {
		close(p.done) // closing: the peer never sends
	}
	return p
}

// stop ends the sender; what is queued is dropped (the peer is gone; it pulls state when it returns).
func (p *peer) stop() { p.cancel() }

// drain waits until the queue is empty or ctx ends (graceful shutdown).
func (p *peer) drain(ctx context.Context) {
	for len(p.queue) > 0 || p.resyncLen() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// enqueue adds a change without blocking; a full queue drops it and remembers the session for a
// whole-state resend.
func (p *peer) enqueue(it item) {
	select {
	case p.queue <- it:
	default:
		p.dropped.Add(1)
		p.markResync(it.id)
		if now := time.Now().UnixNano(); now-p.warnedAt.Load() > int64(5*time.Second) {
			p.warnedAt.Store(now)
			p.r.log.Warn("replication queue full: change dropped, the session will be resent whole",
				"event", "replication.queue_full", "peer", p.name, "queue", cap(p.queue), "dropped", p.dropped.Load())
		}
	}
}

func (p *peer) markResync(id string) {
	p.resyncMu.Lock()
	if len(p.resync) < maxResync {
		p.resync[id] = struct{}{}
	}
	p.resyncMu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *peer) resyncLen() int {
	p.resyncMu.Lock()
	defer p.resyncMu.Unlock()
	return len(p.resync)
}

func (p *peer) takeResync(n int) []string {
	p.resyncMu.Lock()
	defer p.resyncMu.Unlock()
	out := make([]string, 0, min(n, len(p.resync)))
	for id := range p.resync {
		if len(out) == n {
			break
		}
		out = append(out, id)
		delete(p.resync, id)
	}
	return out
}

// run is the sender loop.
func (p *peer) run() {
	batch := make([]item, 0, p.r.cfg.BatchSize)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		batch = batch[:0]
		select {
		case <-p.ctx.Done():
			return
		case it := <-p.queue:
			batch = append(batch, it)
		case <-p.kick:
		case <-tick.C:
		}
		var linger <-chan time.Time
		var lt *time.Timer
		if len(batch) > 0 && p.r.cfg.Linger > 0 {
			lt = time.NewTimer(p.r.cfg.Linger)
			linger = lt.C
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case it := <-p.queue:
				batch = append(batch, it)
				continue
			default:
			}
			if linger == nil {
				break
			}
			select { // wait a little for more: fewer, larger messages under load
			case it := <-p.queue:
				batch = append(batch, it)
			case <-linger:
				break fill
			case <-p.ctx.Done():
				lt.Stop()
				return
			}
		}
		if lt != nil {
			lt.Stop()
		}
		if len(batch) > 0 {
			p.sendBatch(batch)
		}
		if p.resyncLen() > 0 {
			p.sendResync()
		}
	}
}

// batchBodies recycles the bodies sendBatch builds: the channel copies a body into its record, so
// it is garbage once sent, and the sender builds one per batch (tens of KiB).
var batchBodies sync.Pool // of *[]byte

// maxPooledBody bounds the bodies kept in batchBodies.
const maxPooledBody = 1 << 20

// sendBatch sends queued changes in one message; on failure their sessions are marked for resend.
func (p *peer) sendBatch(batch []item) {
	bp, _ := batchBodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	body := appendBatchHeader((*bp)[:0], len(batch))
	for _, it := range batch {
		body = append(body, it.enc...)
	}
	err := p.send(p.ctx, body, len(batch))
	if cap(body) <= maxPooledBody {
		*bp = body[:0]
		batchBodies.Put(bp)
	}
	if err != nil {
		for _, it := range batch {
			p.markResync(it.id)
		}
		return
	}
	p.lagNanos.Store(time.Now().UnixNano() - batch[0].at)
}

// sendResync sends the whole state of the sessions marked for resend, a batch at a time.
func (p *peer) sendResync() {
	for p.ctx.Err() == nil {
		ids := p.takeResync(p.r.cfg.BatchSize)
		if len(ids) == 0 {
			return
		}
		encs := p.r.wholeStates(ids)
		if len(encs) == 0 {
			continue
		}
		if err := p.send(p.ctx, encodeBatch(encs), len(encs)); err != nil {
			p.resyncMu.Lock()
			for _, id := range ids {
				if len(p.resync) < maxResync {
					p.resync[id] = struct{}{}
				}
			}
			p.resyncMu.Unlock()
			// wait for the next tick before retrying an unreachable peer
			select {
			case <-p.ctx.Done():
			case <-time.After(time.Second):
			}
			return
		}
	}
}

// syncBatch is a group of synchronous changes that wait for one message's ack (group commit).
type syncBatch struct {
	encs [][]byte
	ids  []string
	done chan struct{}
	err  error
}

// syncCall is one peer's part of a synchronous change in flight: either this request leads a
// message (call is written, its ack not yet read) or it joined a batch another request leads.
type syncCall struct {
	b    *syncBatch
	lead bool
	call *channel.Call
	body []byte
}

// startSync begins replicating one change to the peer (sync and pooled modes); awaitSync waits for
// the ack. one holds the change's message body, encoded by the first peer that leads a message with
// it and shared by the others (the channel copies a body into its record). At most one message per
// peer is in flight in sync mode, PoolSize in pooled mode; a change that finds them all busy joins
// the batch that leaves as soon as one of them is acknowledged, so under concurrency the peer gets
// fewer, larger messages and every request still returns only once its change was acked. A change
// to several peers is written to all of them before any ack is awaited, on the request's own
// goroutine.
func (p *peer) startSync(ctx context.Context, mode, id string, enc []byte, one *[]byte) syncCall {
	limit := p.r.cfg.PoolSize
	if mode == ModeSync {
		limit = 1
	}
	p.gcMu.Lock()
	if p.gcInflight < limit {
		p.gcInflight++
		p.gcMu.Unlock()
		b := &syncBatch{encs: [][]byte{enc}, ids: []string{id}, done: make(chan struct{})}
		if *one == nil {
			*one = encodeBatch(b.encs)
		}
		body := *one
		return syncCall{b: b, lead: true, body: body,
			call: p.r.cfg.Channel.Go(ctx, p.addr, channel.Message{Type: TypeDeltas, Body: body})}
	}
	b := p.gcPending
	if b == nil || len(b.encs) >= p.r.cfg.BatchSize {
		b = &syncBatch{done: make(chan struct{})}
		p.gcQueue = append(p.gcQueue, b)
		p.gcPending = b
	}
	b.encs = append(b.encs, enc)
	b.ids = append(b.ids, id)
	p.gcMu.Unlock()
	return syncCall{b: b}
}

// awaitSync waits for the ack of sc's change. A leader then still owes the peer the batches that
// formed meanwhile: leadQueued sends them.
func (p *peer) awaitSync(ctx context.Context, sc syncCall) error {
	b := sc.b
	if !sc.lead {
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			p.failures.Add(1)
			return context.Cause(ctx)
		case <-p.ctx.Done():
			return nil // the peer left the cluster meanwhile: nothing to wait for
		}
	}
	b.err = p.collect(ctx, sc.call, sc.body, len(b.encs))
	if p.ctx.Err() != nil {
		b.err = nil // the peer left the cluster: nobody to wait for
	}
	close(b.done)
	return b.err
}

// leadQueued sends the batches that formed while this leader's message was in flight, until none
// is waiting, and then frees the leader's slot.
func (p *peer) leadQueued() {
	for {
		p.gcMu.Lock()
		if len(p.gcQueue) == 0 {
			p.gcInflight--
			p.gcMu.Unlock()
			return
		}
		b := p.gcQueue[0]
		p.gcQueue = p.gcQueue[1:]
		if b == p.gcPending {
			p.gcPending = nil
		}
		p.gcMu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, p.r.settings.Load().ackTimeout)
		b.err = p.send(ctx, encodeBatch(b.encs), len(b.encs))
		cancel()
		if p.ctx.Err() != nil {
			b.err = nil
		}
		close(b.done)
	}
}

// send delivers one TypeDeltas message and answers the receiver's requests for whole sessions.
func (p *peer) send(ctx context.Context, body []byte, n int) error {
	return p.collect(ctx, p.r.cfg.Channel.Go(ctx, p.addr, channel.Message{Type: TypeDeltas, Body: body}), body, n)
}

// collect waits for the reply to a TypeDeltas message of n changes, counts it, and sends whole the
// sessions the receiver asks for.
func (p *peer) collect(ctx context.Context, call *channel.Call, body []byte, n int) error {
	reply, err := call.Wait(ctx)
	if err != nil {
		return p.fail(err)
	}
	p.sent.Add(uint64(n))
	p.batches.Add(1)
	p.bytes.Add(uint64(len(body)))
	if len(reply) > 0 {
		var a ack
		if err := decode(reply, &a); err != nil {
			return p.fail(err)
		}
		if len(a.Need) > 0 {
			if err := p.sendWhole(ctx, a.Need); err != nil {
				return err
			}
		}
	}
	p.acked.Add(uint64(n))
	return nil
}

// sendWhole answers a receiver that missed earlier versions of some sessions with their full state.
func (p *peer) sendWhole(ctx context.Context, ids []string) error {
	encs := p.r.wholeStates(ids[:min(len(ids), MaxBatch)])
	if len(encs) == 0 {
		return nil
	}
	body := encodeBatch(encs)
	if _, err := p.r.cfg.Channel.Request(ctx, p.addr, channel.Message{Type: TypeDeltas, Body: body}); err != nil {
		return p.fail(err)
	}
	p.sent.Add(uint64(len(encs)))
	p.batches.Add(1)
	p.bytes.Add(uint64(len(body)))
	return nil
}

func (p *peer) fail(err error) error {
	p.failures.Add(1)
	msg := err.Error()
	p.lastErr.Store(&msg)
	if errors.Is(err, context.Canceled) {
		return err
	}
	if now := time.Now().UnixNano(); now-p.warnedAt.Load() > int64(5*time.Second) {
		p.warnedAt.Store(now)
		p.r.log.Warn("replication to peer failed", "event", "replication.send_error", "peer", p.name, "err", err)
	}
	return err
}

// wholeStates encodes the full state of each live session among ids (ended ones are skipped).
func (r *Replicator) wholeStates(ids []string) [][]byte {
	encs := make([][]byte, 0, len(ids))
	for _, id := range ids {
		if d, ok := r.cfg.Sessions.Snapshot(id); ok {
			if enc, err := session.MarshalDelta(d); err == nil {
				encs = append(encs, enc)
			}
		}
	}
	return encs
}
