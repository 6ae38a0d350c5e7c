package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRequestReplyAndSendOrder(t *testing.T) {
	checkGoroutines(t)
	got := make(chan string, 200)
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) {
		c.Handle(1, echo)
		c.Handle(2, func(_ context.Context, from string, msg Message) ([]byte, error) {
			got <- from + "/" + string(msg.Body)
			return nil, nil
		})
	})
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()

	reply, err := a.Request(ctx, b.Addr(), Message{Type: 1, Body: []byte("hello")})
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if string(reply) != "a:hello" {
		t.Fatalf("reply %q, want %q", reply, "a:hello")
	}
	for i := range 100 {
		if err := a.Send(ctx, b.Addr(), Message{Type: 2, Body: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for i := range 100 {
		select {
		case s := <-got:
			if want := fmt.Sprintf("a/%d", i); s != want {
				t.Fatalf("message %d: got %q, want %q (order lost)", i, s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never handled", i)
		}
	}
	st := a.Stats()
	if p := st.Peers["b"]; p.SentFrames < 101 || p.RecvFrames < 1 || p.Conns < 1 {
		t.Fatalf("a's stats for b: %+v", p)
	}
	if p := b.Stats().Peers["a"]; p.RecvFrames < 101 {
		t.Fatalf("b's stats for a: %+v", p)
	}
}

func TestRequestErrors(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	cfg := testConfig(t, "b")
	cfg.MaxFrame = 4096
	cfg.StreamChunk = 4096
	b := startChannel(t, cfg, func(c *Channel) {
		c.Handle(1, echo)
		c.Handle(2, func(context.Context, string, Message) ([]byte, error) { return nil, errors.New("disk full") })
		c.Handle(3, func(context.Context, string, Message) ([]byte, error) { panic("boom") })
		c.Handle(5, func(_ context.Context, _ string, m Message) ([]byte, error) { return m.Body, nil })
		c.Handle(4, func(ctx context.Context, _ string, _ Message) ([]byte, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		})
	})
	acfg := testConfig(t, "a")
	acfg.AckTimeout = 200 * time.Millisecond
	acfg.MaxFrame = 4096
	acfg.StreamChunk = 4096
	a := startChannel(t, acfg)
	ctx := context.Background()
	var remote *RemoteError

	_, err := a.Request(ctx, b.Addr(), Message{Type: 2})
	if !errors.As(err, &remote) || remote.Msg != "disk full" || remote.Peer != "b" || remote.Type != 2 {
		t.Fatalf("handler error: got %v", err)
	}
	_, err = a.Request(ctx, b.Addr(), Message{Type: 3})
	if !errors.As(err, &remote) || remote.Msg != "handler panicked: boom" {
		t.Fatalf("panicking handler: got %v", err)
	}
	_, err = a.Request(ctx, b.Addr(), Message{Type: 99})
	if !errors.Is(err, ErrNoHandler) {
		t.Fatalf("unknown type: got %v, want ErrNoHandler", err)
	}
	_, err = a.Request(ctx, b.Addr(), Message{Type: 4})
	if !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("slow handler: got %v, want ErrAckTimeout", err)
	}
	close(release)
	_, err = a.Request(ctx, b.Addr(), Message{Type: 1, Body: make([]byte, 4097)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("big body: got %v, want ErrFrameTooLarge", err)
	}
	if reply, err := a.Request(ctx, b.Addr(), Message{Type: 5, Body: make([]byte, 4096)}); err != nil || len(reply) != 4096 {
		t.Fatalf("max body: %d bytes, %v", len(reply), err)
	}
	_, err = a.Request(ctx, b.Addr(), Message{Type: 1, Body: make([]byte, 4096)}) // echo adds "a:"
	if !errors.As(err, &remote) || !strings.Contains(remote.Msg, "frame too large") {
		t.Fatalf("oversized reply: got %v", err)
	}

	idle, err := New(testConfig(t, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Request(ctx, b.Addr(), Message{Type: 1}); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("before Start: got %v, want ErrNotStarted", err)
	}
	_ = idle.Shutdown()
	if err := idle.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: got %v, want ErrClosed", err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := a.Send(ctx, b.Addr(), Message{Type: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Shutdown: got %v, want ErrClosed", err)
	}
}

// TestPoolServesConcurrentRequests shows the pool's point: a handler that
// needs 4 requests in flight at once can only succeed over 4 connections.
func TestPoolServesConcurrentRequests(t *testing.T) {
	checkGoroutines(t)
	const width = 4
	var arrived atomic.Int32 // handlers entered; each waits for all to enter
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) {
		c.Handle(1, echo)
		c.Handle(2, func(ctx context.Context, _ string, _ Message) ([]byte, error) {
			arrived.Add(1)
			deadline := time.Now().Add(3 * time.Second)
			for arrived.Load() < width {
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("only %d of %d requests were handled at once", arrived.Load(), width)
				}
				time.Sleep(time.Millisecond)
			}
			return nil, nil
		})
	})
	cfg := testConfig(t, "a")
	cfg.PoolSize = width
	cfg.AckTimeout = 5 * time.Second
	a := startChannel(t, cfg)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 64*20+width)
	for range width {
		wg.Go(func() {
			if _, err := a.Request(ctx, b.Addr(), Message{Type: 2}); err != nil {
				errs <- fmt.Errorf("barrier: %w", err)
			}
		})
	}
	wg.Wait()
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				body := fmt.Appendf(nil, "%d-%d", g, i)
				reply, err := a.Request(ctx, b.Addr(), Message{Type: 1, Body: body})
				if err != nil {
					errs <- err
					return
				}
				if want := "a:" + string(body); string(reply) != want {
					errs <- fmt.Errorf("reply %q, want %q", reply, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ps := a.Stats().Pools[b.Addr()]; ps.Conns != width || ps.Peer != "b" {
		t.Fatalf("pool stats %+v, want %d connections", ps, width)
	}
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	checkGoroutines(t)
	bcfg := testConfig(t, "b")
	b1, err := New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	b1.Handle(1, echo)
	if err := b1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := b1.Addr()
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()
	if _, err := a.Request(ctx, addr, Message{Type: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Request(ctx, addr, Message{Type: 1}); err == nil {
		t.Fatal("request to a stopped peer succeeded")
	}

	bcfg.Bind = addr
	b2 := startChannel(t, bcfg, func(c *Channel) {
		c.Handle(1, func(context.Context, string, Message) ([]byte, error) { return []byte("b2"), nil })
	})
	var reply []byte
	waitFor(t, 5*time.Second, "a request to the restarted peer", func() bool {
		reply, err = a.Request(ctx, addr, Message{Type: 1})
		return err == nil
	})
	if string(reply) != "b2" {
		t.Fatalf("reply %q from the restarted peer", reply)
	}
	if ps := a.Stats().Pools[addr]; ps.Reconnects < 1 {
		t.Fatalf("pool stats %+v: want a reconnect", ps)
	}
	_ = b2
}

// fakeClock is a settable clock for backoff tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestReconnectBackoff(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()

	clock := &fakeClock{now: time.Unix(1000, 0)}
	cfg := testConfig(t, "a")
	cfg.Now = clock.Now
	cfg.ReconnectBackoff = time.Second
	cfg.MaxReconnectBackoff = 3 * time.Second
	a := startChannel(t, cfg)
	ctx := context.Background()
	dials := func() uint64 { return a.Stats().Pools[dead].Dials }

	for i, step := range []struct {
		advance   time.Duration
		wantDials uint64
	}{
		{0, 1},                      // first dial fails, backoff 1s
		{500 * time.Millisecond, 1}, // within backoff: fails fast
		{600 * time.Millisecond, 2}, // backoff over: dials, fails, backoff 2s
		{1500 * time.Millisecond, 2},
		{600 * time.Millisecond, 3}, // backoff 3s (capped) from here
		{2900 * time.Millisecond, 3},
		{200 * time.Millisecond, 4},
	} {
		clock.Add(step.advance)
		err := a.Send(ctx, dead, Message{Type: 1})
		if !errors.Is(err, ErrPeerUnavailable) {
			t.Fatalf("step %d: got %v, want ErrPeerUnavailable", i, err)
		}
		if got := dials(); got != step.wantDials {
			t.Fatalf("step %d: %d dials, want %d (%v)", i, got, step.wantDials, err)
		}
	}
	if ps := a.Stats().Pools[dead]; ps.DialFailures != 4 || ps.LastError == "" {
		t.Fatalf("pool stats %+v", ps)
	}
}

func TestKeepAliveAndIdleTimeout(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		wantAlive bool
	}{
		{"pings keep an idle connection", 60 * time.Millisecond, true},
		{"without pings it closes", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bcfg := testConfig(t, "b")
			bcfg.IdleTimeout = 300 * time.Millisecond
			bcfg.KeepAlive = 0
			b := startChannel(t, bcfg, func(c *Channel) { c.Handle(1, echo) })
			cfg := testConfig(t, "a")
			cfg.KeepAlive = tc.keepAlive
			cfg.IdleTimeout = 300 * time.Millisecond
			a := startChannel(t, cfg)
			if _, err := a.Request(context.Background(), b.Addr(), Message{Type: 1}); err != nil {
				t.Fatal(err)
			}
			conns := func() int { return a.Stats().Pools[b.Addr()].Conns }
			if tc.wantAlive {
				// Several idle timeouts pass; the connection must survive.
				start := a.Stats().Peers["b"].RecvFrames
				waitFor(t, 5*time.Second, "15 pongs", func() bool { return a.Stats().Peers["b"].RecvFrames >= start+15 })
				if conns() != 1 || a.Stats().Pools[b.Addr()].Dials != 1 {
					t.Fatalf("connection did not survive: %+v", a.Stats().Pools[b.Addr()])
				}
				return
			}
			waitFor(t, 5*time.Second, "the idle connection to close", func() bool { return conns() == 0 })
			if _, err := a.Request(context.Background(), b.Addr(), Message{Type: 1}); err != nil {
				t.Fatalf("request after idle close: %v", err)
			}
		})
	}
}

func TestShutdownFailsWaitingRequests(t *testing.T) {
	checkGoroutines(t)
	entered := make(chan struct{})
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) {
		c.Handle(1, func(ctx context.Context, _ string, _ Message) ([]byte, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	cfg := testConfig(t, "a")
	cfg.AckTimeout = time.Minute
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Request(context.Background(), b.Addr(), Message{Type: 1, Body: bytes.Repeat([]byte("x"), 10)})
		done <- err
	}()
	<-entered
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnClosed) {
			t.Fatalf("got %v, want ErrConnClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request still waiting after Shutdown")
	}
}

// A transient handler's messages are read into one buffer the connection reuses; every other
// handler's message keeps a body of its own, even when the two kinds interleave on one connection.
func TestTransientHandlerReusesReadBuffer(t *testing.T) {
	checkGoroutines(t)
	const n = 60
	var (
		mu      sync.Mutex
		kept    = map[int][]byte{} // type 2 bodies, kept as handed over
		bufs    = map[*byte]bool{} // where type 1 bodies were read
		lent    int
		errs    []string
		handled = make(chan struct{}, n)
	)
	uniform := func(b []byte) bool { return len(b) > 0 && bytes.Count(b, b[:1]) == len(b) }
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) {
		c.HandleTransient(1, func(_ context.Context, _ string, msg Message) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			if !uniform(msg.Body) {
				errs = append(errs, fmt.Sprintf("transient message %d: mixed bytes", msg.Body[0]))
			}
			bufs[&msg.Body[:1][0]] = true
			lent++
			handled <- struct{}{}
			return nil, nil
		})
		c.Handle(2, func(_ context.Context, _ string, msg Message) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			kept[int(msg.Body[0])] = msg.Body
			handled <- struct{}{}
			return nil, nil
		})
	})
	a := startChannel(t, testConfig(t, "a"))
	size := func(i int) int { return 100 + (i*7919)%30000 }
	for i := range n {
		body := bytes.Repeat([]byte{byte(i + 1)}, size(i))
		if err := a.Send(context.Background(), b.Addr(), Message{Type: uint16(1 + i%2), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("messages not handled")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for i := 1; i < n; i += 2 {
		if got := kept[i+1]; len(got) != size(i) || !uniform(got) {
			t.Fatalf("kept body of message %d: %d bytes, uniform %v; want %d bytes of %d (overwritten by a later read?)",
				i, len(got), uniform(got), size(i), i+1)
		}
	}
	if len(bufs) >= lent {
		t.Fatalf("%d transient messages were read into %d buffers: the read buffer was never reused", lent, len(bufs))
	}
}
