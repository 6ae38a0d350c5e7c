package membership

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// DefaultMaxPending is the per-subscriber queue limit used when NewHub is
// given a non-positive one.
const DefaultMaxPending = 4096

// Hub fans events out to any number of subscribers. Publish never blocks:
// each subscriber has its own queue (at most maxPending events) drained into
// its channel by a goroutine the Hub owns. When a queue is full the oldest
// event is dropped and counted. Providers embed a Hub; consumers use the
// provider's Events or Subscribe.
type Hub struct {
	maxPending int
	logger     *slog.Logger
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewHub returns a Hub whose subscribers buffer up to maxPending events
// (DefaultMaxPending if maxPending <= 0). logger may be nil.
func NewHub(maxPending int, logger *slog.Logger) *Hub {
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{maxPending: maxPending, logger: logger, ctx: ctx, cancel: cancel,
		subs: make(map[*Subscription]struct{})}
}

// Publish queues evs, in order, for every current subscriber. It never
// blocks on a consumer. The Hub does not modify evs; each subscriber receives
// its own deep copy. Publishing after Close is a no-op.
func (h *Hub) Publish(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.enqueue(evs)
	}
}

// Subscribe returns a new subscription whose stream starts with initial
// (typically a Join per known member) and continues with every later
// Publish. Callers that need the initial events to be consistent with the
// stream call Subscribe under the same lock they Publish under. After Close,
// Subscribe returns a subscription whose channel is already closed.
func (h *Hub) Subscribe(initial []Event) *Subscription {
	ctx, cancel := context.WithCancel(h.ctx)
	s := &Subscription{hub: h, ch: make(chan Event), ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		cancel()
		close(s.ch)
		return s
	}
	s.enqueue(initial)
	h.subs[s] = struct{}{}
	h.wg.Add(1)
	go s.pump()
	return s
}

// Close stops every subscription: pending events are discarded and the
// channels are closed. It waits for the Hub's goroutines and is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.subs = make(map[*Subscription]struct{})
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// Subscription is one consumer's ordered event stream.
type Subscription struct {
	hub     *Hub
	ch      chan Event
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	dropped atomic.Uint64

	mu    sync.Mutex
	queue []Event
}

// C returns the stream. It is closed by Close or by the provider's Shutdown.
func (s *Subscription) C() <-chan Event { return s.ch }

// Dropped returns how many events were discarded because this subscriber
// fell more than the Hub's limit behind.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes its channel (after the pump stops;
// pending events are discarded). It is idempotent.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
	s.cancel()
}

func (s *Subscription) enqueue(evs []Event) {
	s.mu.Lock()
	for _, ev := range evs {
		if len(s.queue) >= s.hub.maxPending {
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			if n := s.dropped.Add(1); n == 1 || n%1000 == 0 {
				s.hub.logger.Warn("membership.events_dropped", slog.Uint64("dropped", n),
					slog.Int("max_pending", s.hub.maxPending))
			}
		}
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) next() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Event{}, false
	}
	ev := s.queue[0]
	s.queue[0] = Event{}
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	return ev, true
}

func (s *Subscription) pump() {
	defer s.hub.wg.Done()
	defer close(s.ch)
	for {
		ev, ok := s.next()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		ev.Member = ev.Member.Clone()
		select {
		case s.ch <- ev:
		case <-s.ctx.Done():
			return
		}
	}
}
