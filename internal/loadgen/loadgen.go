// Package loadgen is herd's small HTTP load generator for benchmarks: a fixed number of concurrent
// clients, each with its own keep-alive connection and (optionally) its own cookie jar, run for a
// bounded time and number of requests, and report throughput and latency percentiles.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sync"
	"time"
)

// Options describe one load run. The run stops at Duration or after Requests requests, whichever
// comes first; at least one of them must be set.
type Options struct {
	// URL is requested with GET unless NewRequest is set.
	URL string
	// NewRequest builds client c's next request (c in [0, Concurrency)); nil: GET URL.
	NewRequest func(c int) (*http.Request, error)
	// Concurrency is the number of clients (default 8).
	Concurrency int
	// Duration bounds the measured part of the run's time (the warmup comes before it).
	Duration time.Duration
	// Requests bounds the run's total request count.
	Requests int
	// Warmup requests per client are sent first and not measured (default 0).
	Warmup int
	// Cookies gives each client a cookie jar, so each keeps its own session.
	Cookies bool
	// Check, when set, judges each response (body already read); an error counts as a failure.
	Check func(resp *http.Response, body []byte) error
}

// Result is what a run measured.
type Result struct {
	Requests  int
	Failures  int
	FirstErr  error
	Elapsed   time.Duration
	PerSecond float64
	P50, P90  time.Duration
	P99, Max  time.Duration
}

// String formats the result on one line.
func (r Result) String() string {
	return fmt.Sprintf("%d req in %v: %.0f req/s, p50 %v, p90 %v, p99 %v, max %v, failures %d",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.PerSecond, r.P50, r.P90, r.P99, r.Max, r.Failures)
}

// Run generates the load and waits for every client to finish.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Duration <= 0 && o.Requests <= 0 {
		return Result{}, errors.New("loadgen: set Duration or Requests")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	tr := &http.Transport{MaxIdleConnsPerHost: o.Concurrency, MaxConnsPerHost: o.Concurrency,
		DisableCompression: true}
	defer tr.CloseIdleConnections()

	var (
		mu      sync.Mutex
		lat     []time.Duration
		res     Result
		budget  = o.Requests
		limited = o.Requests > 0
		wg      sync.WaitGroup
	)
	take := func() bool {
		if !limited {
			return true
		}
		mu.Lock()
		defer mu.Unlock()
		if budget <= 0 {
			return false
		}
		budget--
		return true
	}
	clients := make([]*http.Client, o.Concurrency)
	for i := range clients {
		clients[i] = &http.Client{Transport: tr, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if o.Cookies {
			clients[i].Jar, _ = cookiejar.New(nil)
		}
		for w := 0; w < o.Warmup; w++ {
			_, _ = do(ctx, clients[i], o, i)
		}
	}
	// The measured window starts after the warmup: on a loaded machine the warmup alone may take
	// longer than Duration, which would leave nothing measured.
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	start := time.Now()
	for c := 0; c < o.Concurrency; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			var fails int
			var firstErr error
			for ctx.Err() == nil && take() {
				t0 := time.Now()
				err := func() error { _, err := do(ctx, clients[c], o, c); return err }()
				if ctx.Err() != nil && err != nil {
					break // the run ended under this request: not a failure of the server
				}
				local = append(local, time.Since(t0))
				if err != nil {
					fails++
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			res.Failures += fails
			if res.FirstErr == nil {
				res.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(lat)
	if res.Elapsed > 0 {
		res.PerSecond = float64(res.Requests) / res.Elapsed.Seconds()
	}
	slices.Sort(lat)
	res.P50, res.P90, res.P99 = pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

func do(ctx context.Context, c *http.Client, o Options, i int) (int, error) {
	var req *http.Request
	var err error
	if o.NewRequest != nil {
		req, err = o.NewRequest(i)
	} else {
		req, err = http.NewRequest(http.MethodGet, o.URL, nil)
	}
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, err
	}
	if o.Check != nil {
		return resp.StatusCode, o.Check(resp, body)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}
