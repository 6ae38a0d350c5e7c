package router

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// healthLoop polls every node's health path each HealthInterval (picking up a reloaded interval)
// and marks nodes that fail it unhealthy until they pass again.
func (r *Router) healthLoop(ctx context.Context) {
	tr := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 1,
		IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	interval := r.run.Load().settings.HealthInterval
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	r.checkAll(ctx, client)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.reloaded:
			if iv := r.run.Load().settings.HealthInterval; iv != interval {
				interval = iv
				ticker.Reset(interval)
			}
		case <-ticker.C:
			r.checkAll(ctx, client)
		}
	}
}

// checkAll probes every backend of the current table at once and waits for the answers.
func (r *Router) checkAll(ctx context.Context, client *http.Client) {
	s := r.run.Load().settings
	timeout := min(s.HealthInterval, s.DialTimeout+s.ResponseHeaderTimeout, 10*time.Second)
	var wg sync.WaitGroup
	for _, b := range r.table.Load().backends {
		wg.Go(func() {
			err := probe(ctx, client, "http://"+b.Addr+s.HealthPath, timeout)
			if ctx.Err() != nil {
				return
			}
			was := b.state.unhealthy.Swap(err != nil)
			b.state.checks.Add(1)
			switch {
			case err != nil && !was:
				r.metrics.markIneligible(b.Name, ineligibleHealth)
				r.log.Warn("node failed its health check", "event", "router.node_unhealthy", "node", b.Name, "err", err)
			case err == nil && was:
				r.log.Info("node passed its health check", "event", "router.node_healthy", "node", b.Name)
			}
		})
	}
	wg.Wait()
	r.rounds.Add(1)
}

// probe GETs url and wants a 2xx answer within timeout.
func probe(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "herd-router-health")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &healthError{status: resp.StatusCode}
	}
	return nil
}

type healthError struct{ status int }

func (e *healthError) Error() string { return "health check answered " + http.StatusText(e.status) }
