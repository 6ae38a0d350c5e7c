package channel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// payload returns n deterministic pseudo-random bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = r.Read(b)
	return b
}

// sha256Handler reads the whole stream and fails unless its SHA-256 is the
// header.
func sha256Handler(_ context.Context, _ string, msg Message, r io.Reader) error {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, msg.Body) {
		return fmt.Errorf("sha256 %x, header says %x", got, msg.Body)
	}
	return nil
}

func TestStream20MBWithConcurrentRequests(t *testing.T) {
	checkGoroutines(t)
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) {
		c.Handle(1, echo)
		c.HandleStream(7, sha256Handler)
	})
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()
	if _, err := a.Request(ctx, b.Addr(), Message{Type: 1}); err != nil {
		t.Fatal(err)
	}
	data := payload(20 << 20)
	sum := sha256.Sum256(data)
	s, err := a.OpenStream(ctx, b.Addr(), Message{Type: 7, Body: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Peers["b"].Conns != 2 || st.Pools[b.Addr()].Conns != 1 {
		t.Fatalf("want the stream on its own connection beside the pool: %+v", st)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var requests int
	var reqErr error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := a.Request(ctx, b.Addr(), Message{Type: 1, Body: []byte("ping")}); err != nil {
				reqErr = err
				return
			}
			requests++
		}
	})
	for off := 0; off < len(data); { // odd Write sizes, across chunk boundaries
		end := min(off+(1<<20)+off%7, len(data))
		if n, err := s.Write(data[off:end]); err != nil || n != end-off {
			t.Fatalf("Write at %d: %d, %v", off, n, err)
		}
		off = end
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(stop)
	wg.Wait()
	if reqErr != nil || requests == 0 {
		t.Fatalf("requests during the stream: %d done, error %v", requests, reqErr)
	}
	t.Logf("%d requests completed during the 20 MB stream", requests)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestStreamFlowControl(t *testing.T) {
	checkGoroutines(t)
	const window, chunk = 64 << 10, 8 << 10
	release := make(chan struct{})
	cfg := testConfig(t, "b")
	cfg.StreamWindow, cfg.StreamChunk = window, chunk
	b := startChannel(t, cfg, func(c *Channel) {
		c.HandleStream(7, func(ctx context.Context, from string, msg Message, r io.Reader) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return sha256Handler(ctx, from, msg, r)
		})
	})
	acfg := testConfig(t, "a")
	acfg.StreamChunk = chunk
	a := startChannel(t, acfg)
	data := payload(4 * window)
	sum := sha256.Sum256(data)
	s, err := a.OpenStream(context.Background(), b.Addr(), Message{Type: 7, Body: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	written := 0
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += chunk {
			if _, err := s.Write(data[off : off+chunk]); err != nil {
				done <- err
				return
			}
			mu.Lock()
			written += chunk
			mu.Unlock()
		}
		done <- s.Close()
	}()
	waitFor(t, 5*time.Second, "the sender to fill the window and stall", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if written > window {
			t.Fatalf("sender wrote %d bytes past a %d-byte window nobody reads", written, window)
		}
		return written == window && s.credit.Load() == 0
	})
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not finish after the receiver started reading")
	}
}

func TestStreamFailures(t *testing.T) {
	checkGoroutines(t)
	handlerErr := make(chan error, 4)
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) {
		c.HandleStream(1, func(context.Context, string, Message, io.Reader) error { return errors.New("no space left") })
		c.HandleStream(2, func(_ context.Context, _ string, _ Message, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			handlerErr <- err
			return err
		})
	})
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()

	t.Run("handler error reaches Close", func(t *testing.T) {
		s, err := a.OpenStream(ctx, b.Addr(), Message{Type: 1})
		if err != nil {
			t.Fatal(err)
		}
		var remote *RemoteError
		// Writes may fail early once the result is in; Close reports it.
		_, _ = s.Write(make([]byte, 1000))
		if err := s.Close(); !errors.As(err, &remote) || remote.Msg != "no space left" {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("no handler", func(t *testing.T) {
		_, err := a.OpenStream(ctx, b.Addr(), Message{Type: 9})
		if !errors.Is(err, ErrNoHandler) {
			t.Fatalf("got %v, want ErrNoHandler", err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		s, err := a.OpenStream(ctx, b.Addr(), Message{Type: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		if err := s.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := <-handlerErr; !errors.Is(err, ErrStreamAborted) {
			t.Fatalf("handler read %v, want ErrStreamAborted", err)
		}
		if err := s.Close(); !errors.Is(err, ErrStreamAborted) {
			t.Fatalf("Close after Abort: %v", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		s, err := a.OpenStream(cctx, b.Addr(), Message{Type: 2})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		waitFor(t, 5*time.Second, "the handler to see the abort", func() bool {
			select {
			case err := <-handlerErr:
				if !errors.Is(err, ErrStreamAborted) {
					t.Fatalf("handler read %v, want ErrStreamAborted", err)
				}
				return true
			default:
				return false
			}
		})
		if _, err := s.Write([]byte("x")); !errors.Is(err, ErrStreamAborted) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Write after cancel: %v", err)
		}
	})
}

func TestStreamReceiverShutsDownMidStream(t *testing.T) {
	checkGoroutines(t)
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()
	blocked := make(chan struct{})
	ccfg := testConfig(t, "c")
	c, err := New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	c.HandleStream(3, func(_ context.Context, _ string, _ Message, r io.Reader) error {
		close(blocked)
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := a.OpenStream(ctx, c.Addr(), Message{Type: 3})
	if err != nil {
		t.Fatal(err)
	}
	<-blocked
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Close after the receiver left: %v", err)
	}
}
