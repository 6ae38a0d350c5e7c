package farming

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFarm measures, on three in-process members, the time from dropping a 1 MB and a 50 MB
// bundle into node1's watch directory (rename into place) to all three serving it over HTTP, and
// the time from a member's restart to it serving a bundle dropped while it was down. The watch
// directory's settle time (200ms here) is part of the drop figures.
//
//	go test -run '^$' -bench Farm -benchtime 1x ./farming
func BenchmarkFarm(b *testing.B) {
	c := newCluster(b, 3, func(_ string, cfg *Config) { cfg.Settle = 200 * time.Millisecond })
	n1, n3 := c.nodes[0], c.nodes[2]
	for i := 0; i < b.N; i++ {
		for _, sz := range []struct {
			label string
			bytes int
		}{{"1MB", 1 << 20}, {"50MB", 50 << 20}} {
			name := fmt.Sprintf("b%s%d", sz.label[:len(sz.label)-2], i)
			marker := "bench " + name
			src := makeBundle(b, b.TempDir(), name+".zip", marker, sz.bytes)
			tmp := filepath.Join(n1.watch, "."+name+".tmp")
			copyTo(b, src, tmp)
			start := time.Now()
			must(b, renameFile(tmp, filepath.Join(n1.watch, name+".zip")))
			waitServing(b, 60*time.Second, "/"+name+"/", marker, c.nodes...)
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-drop-to-3-serving-"+sz.label)
		}

		n3.stop()
		c.waitMembers(2)
		name := fmt.Sprintf("late%d", i)
		marker := "bench " + name
		n1.drop(makeBundle(b, b.TempDir(), name+".zip", marker, 10<<20))
		waitServing(b, 60*time.Second, "/"+name+"/", marker, c.nodes[:2]...)
		start := time.Now()
		n3.start()
		waitServing(b, 60*time.Second, "/"+name+"/", marker, n3)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-catchup-10MB")
		waitFor(b, 60*time.Second, "node3 ready", n3.farm.Ready)
	}
}
