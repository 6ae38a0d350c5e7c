package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const (
	pollMin      = 50 * time.Millisecond
	pollMax      = 500 * time.Millisecond
	probeTimeout = time.Second
)

// newProbeClient returns the HTTP client of health probes: no proxy, no keep-alive, no redirects (a 3xx
// is not healthy), bounded in time.
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: probeTimeout}).DialContext,
			DisableKeepAlives:      true,
			ResponseHeaderTimeout:  probeTimeout,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       probeTimeout,
	}
}

// waitHealthy polls r until it is healthy. It returns ErrExited as soon as the process exits,
// ErrStartTimeout (with the last probe error) after StartTimeout, ErrStopped when Stop is called, or
// ctx's error.
func (p *Process) waitHealthy(ctx context.Context, r *run) error {
	deadline := time.NewTimer(p.spec.StartTimeout)
	defer deadline.Stop()
	interval := pollMin
	for {
		select {
		case <-r.done:
			return ErrExited
		default:
		}
		lastErr := p.probe(ctx, r.addr)
		if lastErr == nil {
			return nil
		}
		tick := time.NewTimer(interval)
		select {
		case <-r.done:
			tick.Stop()
			return ErrExited
		case <-deadline.C:
			tick.Stop()
			return fmt.Errorf("%w (%s; last probe: %v)", ErrStartTimeout, p.spec.StartTimeout, lastErr)
		case <-p.stopCh:
			tick.Stop()
			return ErrStopped
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		case <-tick.C:
		}
		interval = min(2*interval, pollMax)
	}
}

// probe checks once whether the app at addr is ready.
func (p *Process) probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if p.spec.HealthPath == "" {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.spec.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := p.httpc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s answered %s", p.spec.HealthPath, resp.Status)
	}
	return nil
}
