package channel

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

// reportLatency adds p50 and p99 of lat (microseconds) to b's metrics.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), prefix+"p99-µs")
}

// benchPair starts a server with an echo handler (type 1) and a handler
// that works for 200µs (type 2), and a client with the given pool size.
func benchPair(b *testing.B, poolSize int) (client *Channel, addr string) {
	srv := startChannel(b, testConfig(b, "srv"), func(c *Channel) {
		c.Handle(1, echo)
		c.Handle(2, func(_ context.Context, _ string, m Message) ([]byte, error) {
			time.Sleep(200 * time.Microsecond)
			return m.Body[:8], nil
		})
		c.HandleStream(1, func(_ context.Context, _ string, _ Message, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
	})
	cfg := testConfig(b, "cli")
	cfg.PoolSize = poolSize
	cfg.AckTimeout = 10 * time.Second
	return startChannel(b, cfg), srv.Addr()
}

// BenchmarkRequest measures 1 KB request round trips from 8 concurrent
// callers; ns/op is wall time per request (the inverse of throughput).
func BenchmarkRequest(b *testing.B) {
	const concurrency = 8
	for _, handler := range []struct {
		name string
		typ  uint16
	}{{"echo", 1}, {"work200us", 2}} {
		for _, pool := range []int{1, 8} {
			b.Run(fmt.Sprintf("handler=%s/pool=%d", handler.name, pool), func(b *testing.B) {
				cli, addr := benchPair(b, pool)
				body := make([]byte, 1024)
				ctx := context.Background()
				if _, err := cli.Request(ctx, addr, Message{Type: handler.typ, Body: body}); err != nil {
					b.Fatal(err)
				}
				lat := make([][]time.Duration, concurrency)
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for g := range concurrency {
					n := b.N / concurrency
					if g < b.N%concurrency {
						n++
					}
					wg.Go(func() {
						for range n {
							t0 := time.Now()
							if _, err := cli.Request(ctx, addr, Message{Type: handler.typ, Body: body}); err != nil {
								b.Error(err)
								return
							}
							lat[g] = append(lat[g], time.Since(t0))
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
				reportLatency(b, "", slices.Concat(lat...))
			})
		}
	}
}

// BenchmarkStream measures stream throughput; each op is 1 MiB.
func BenchmarkStream(b *testing.B) {
	cli, addr := benchPair(b, 1)
	chunk := payload(1 << 20)
	s, err := cli.OpenStream(context.Background(), addr, Message{Type: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRequestUnderStream measures sequential 1 KB request latency,
// idle and while 20 MB streams run back to back to the same peer.
func BenchmarkRequestUnderStream(b *testing.B) {
	for _, streaming := range []bool{false, true} {
		b.Run(fmt.Sprintf("stream=%v", streaming), func(b *testing.B) {
			cli, addr := benchPair(b, 8)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var streamed int64
			if streaming {
				data := payload(20 << 20)
				wg.Go(func() {
					for ctx.Err() == nil {
						s, err := cli.OpenStream(ctx, addr, Message{Type: 1})
						if err != nil {
							return
						}
						n, _ := s.Write(data)
						streamed += int64(n)
						_ = s.Close()
					}
				})
			}
			body := make([]byte, 1024)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				t0 := time.Now()
				if _, err := cli.Request(context.Background(), addr, Message{Type: 1, Body: body}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			wg.Wait()
			reportLatency(b, "", lat)
			if streaming {
				b.ReportMetric(float64(streamed)/elapsed.Seconds()/1e6, "stream-MB/s")
			}
		})
	}
}
