package main

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReloadReplicationModeUnderLoad switches every node's replication mode async -> sync -> pooled
// with SIGHUP while clients keep updating their sessions through the router: no request may fail,
// and each node reports the new mode.
func TestReloadReplicationModeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	c := startE2ECluster(t, "delta", "async")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			cl := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			for ctx.Err() == nil {
				resp, err := cl.Get("http://" + c.router + "/counter/inc")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = &statusError{resp.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	mode := "async"
	for _, next := range []string{"sync", "pooled"} {
		time.Sleep(time.Second)
		before := ok.Load()
		for i, dir := range c.dirs {
			path := filepath.Join(dir, "herd.yaml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			nb := strings.Replace(string(b), "mode: "+mode, "mode: "+next, 1)
			if nb == string(b) {
				t.Fatalf("node%d config has no mode: %s", i+1, mode)
			}
			if err := os.WriteFile(path, []byte(nb), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := c.nodes[i].cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range c.addrs {
			waitHTTP(t, "http://"+a+"/manager/api/stats", func(s int, b string) bool {
				return s == 200 && strings.Contains(b, `"mode": "`+next+`"`)
			})
		}
		t.Logf("%s -> %s on every node; %d requests served meanwhile", mode, next, ok.Load()-before)
		mode = next
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("%d requests, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed across the reloads (first: %v)", failed.Load(), firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no request served")
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + http.StatusText(e.code) }
