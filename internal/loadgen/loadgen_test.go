package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsRequestsAndFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "s", Value: "x"})
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 4, Requests: 200, Duration: 20 * time.Second, Cookies: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || int(n.Load()) != 200 {
		t.Fatalf("requests %d, server saw %d, want 200", res.Requests, n.Load())
	}
	if res.Failures != 20 {
		t.Fatalf("failures %d, want 20 (every 10th answered 500)", res.Failures)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
		t.Fatalf("percentiles out of order: %v", res)
	}
}

func TestRunNeedsABound(t *testing.T) {
	if _, err := Run(context.Background(), Options{URL: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("a run without Duration or Requests was accepted")
	}
}

// The warmup comes before the measured window: a warmup longer than Duration must not leave the run
// with nothing measured.
func TestWarmupDoesNotEatTheWindow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()
	start := time.Now()
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 2, Warmup: 10, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("warmup of 20 requests of 20ms took only %v", took)
	}
	if res.Requests == 0 || res.Failures != 0 {
		t.Fatalf("measured %d requests, %d failures; want some and none", res.Requests, res.Failures)
	}
}
