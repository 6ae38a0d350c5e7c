package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	soakFor     = flag.Duration("herd.soak", 12*time.Second, "length of TestSoak (the README's figures come from -herd.soak=10m)")
	soakClients = flag.Int("herd.soak.clients", 16, "concurrent clients in TestSoak")
)

// Soak bounds: what the nodes may grow by between the first and the last sample. Sessions live
// sessions.maxInactive (30 min), so a run shorter than that accumulates them: the heap bound allows
// 4 KiB per session gained on top of the fixed allowance.
const (
	soakHeapGrowth      = 32 << 20 // bytes of heap per node, beyond the sessions it gained
	soakSessionBytes    = 4 << 10  // heap allowed per session gained
	soakGoroutineGrowth = 50       // goroutines per node
)

// TestSoak keeps a real cluster (three nodes, the router, pooled replication) under session load
// for -herd.soak, samples every node's heap and goroutines, and the latency of each tenth of the
// run. The nodes must not grow beyond the bounds above.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	c := startE2ECluster(t, "delta", "pooled")
	type sample struct {
		heap       [3]uint64
		goroutines [3]int
		sessions   [3]int
	}
	take := func() sample {
		var s sample
		for i, a := range c.addrs {
			body := waitHTTP(t, "http://"+a+"/manager/api/stats", func(st int, _ string) bool { return st == 200 })
			var st struct {
				HeapBytes  uint64
				Goroutines int
				Sessions   int
			}
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatal(err)
			}
			s.heap[i], s.goroutines[i], s.sessions[i] = st.HeapBytes, st.Goroutines, st.Sessions
		}
		return s
	}
	windows := 10
	window := *soakFor / time.Duration(windows)
	var mu sync.Mutex
	lat := make([][]time.Duration, windows)
	errs := 0
	start := time.Now()
	// warm up, then take the first sample
	for i := range 4 {
		jar, _ := cookiejar.New(nil)
		cl := &http.Client{Jar: jar}
		if resp, err := cl.Get("http://" + c.router + "/counter/inc"); err == nil {
			resp.Body.Close()
		} else {
			t.Fatalf("warm-up %d: %v", i, err)
		}
	}
	// Samples are taken under load at the end of each window: the first one, once connection pools
	// and caches are warm, is the baseline; the last one must stay within the bounds.
	var samples []sample
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for w := 1; w <= windows; w++ {
			time.Sleep(time.Until(start.Add(time.Duration(w)*window - window/10)))
			s := take()
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	for range *soakClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			cl := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			for n := 0; ; n++ {
				t0 := time.Now()
				w := int(t0.Sub(start) / window)
				if w >= windows {
					return
				}
				if n%200 == 199 { // sessions come and go: a new client every 200 requests
					jar, _ = cookiejar.New(nil)
					cl.Jar = jar
				}
				resp, err := cl.Get("http://" + c.router + "/counter/inc")
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					lat[w] = append(lat[w], time.Since(t0))
				} else {
					errs++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-sampled
	first, last := samples[0], samples[len(samples)-1]
	var sb strings.Builder
	fmt.Fprintf(&sb, "soak %v, %d clients through the router, pooled replication, 3 nodes\n", *soakFor, *soakClients)
	fmt.Fprintf(&sb, "%8s %9s %9s %9s %9s\n", "window", "requests", "p50", "p99", "max")
	total := 0
	for i, l := range lat {
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
		total += len(l)
		if len(l) == 0 {
			continue
		}
		fmt.Fprintf(&sb, "%7d%% %9d %9v %9v %9v\n", (i+1)*100/windows, len(l), l[len(l)/2].Round(time.Microsecond),
			l[len(l)*99/100].Round(time.Microsecond), l[len(l)-1].Round(time.Microsecond))
	}
	fmt.Fprintf(&sb, "requests %d, errors %d\n", total, errs)
	for i := range c.addrs {
		fmt.Fprintf(&sb, "node%d heap MiB:", i+1)
		for _, smp := range samples {
			fmt.Fprintf(&sb, " %.1f", float64(smp.heap[i])/(1<<20))
		}
		fmt.Fprintf(&sb, "; goroutines:")
		for _, smp := range samples {
			fmt.Fprintf(&sb, " %d", smp.goroutines[i])
		}
		fmt.Fprintf(&sb, "; sessions held:")
		for _, smp := range samples {
			fmt.Fprintf(&sb, " %d", smp.sessions[i])
		}
		sb.WriteString("\n")
	}
	t.Log("\n" + sb.String())
	if errs > 0 {
		t.Errorf("%d failed requests", errs)
	}
	for i := range c.addrs {
		gained := max(0, last.sessions[i]-first.sessions[i])
		if last.heap[i] > first.heap[i]+soakHeapGrowth+uint64(gained*soakSessionBytes) {
			t.Errorf("node%d heap grew from %d to %d bytes", i+1, first.heap[i], last.heap[i])
		}
		if last.goroutines[i] > first.goroutines[i]+soakGoroutineGrowth {
			t.Errorf("node%d goroutines grew from %d to %d", i+1, first.goroutines[i], last.goroutines[i])
		}
	}
}
