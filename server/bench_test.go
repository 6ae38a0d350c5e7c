package server

import (
	"context"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/loadgen"
	"github.com/herdproject/herd/internal/testapps"
)

// BenchmarkCounterThroughNode drives the sample counter app through an in-process node (for CPU
// profiles of the node's request path: go test -bench CounterThroughNode -cpuprofile cpu.out ./server).
func BenchmarkCounterThroughNode(b *testing.B) {
	n := newNode(b, nil)
	n.drop(testapps.Bundle(b, "counter", "counter.zip"))
	n.waitApp("counter##1", true)
	b.ResetTimer()
	res, err := loadgen.Run(context.Background(), loadgen.Options{URL: n.url + "/counter/inc", Cookies: true,
		Concurrency: 4, Requests: b.N, Duration: time.Minute})
	if err != nil || res.Failures > 0 {
		b.Fatalf("%v %v", err, res.FirstErr)
	}
	b.ReportMetric(res.PerSecond, "req/s")
}
