package session

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

func benchManager(b *testing.B) *Manager {
	m, err := NewManager(Options{Route: "node1"})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkCreate(b *testing.B) {
	m := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		s, _ := m.Create("app")
		s.Commit()
	}
}

func BenchmarkGet(b *testing.B) {
	m := benchManager(b)
	ids := make([]string, 1024)
	for i := range ids {
		s, _ := m.Create("app")
		s.Commit()
		ids[i] = s.ID()
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := m.Get(ids[i&1023]); !ok {
				b.Fatal("missing")
			}
			i++
		}
	})
}

func BenchmarkCommitChange(b *testing.B) {
	m := benchManager(b)
	var n int
	m.Subscribe(func(Delta) { n++ })
	s, _ := m.Create("app")
	v := make([]byte, 100)
	b.ReportAllocs()
	for b.Loop() {
		v[0]++
		_ = s.Set("k", v)
		s.Commit()
	}
	if n == 0 {
		b.Fatal("no deltas")
	}
}

// BenchmarkIdleSessionMemory reports the heap held per idle session with
// 1 KiB of attributes (4 keys of 256 bytes), including the Manager's index.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const n = 20000
	val := make([]byte, 256)
	for b.Loop() {
		m := benchManager(b)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			s, _ := m.Create("app")
			for k := range 4 {
				_ = s.Set(fmt.Sprint("attr", k), val)
			}
			s.Commit()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(per, "B/session")
		b.ReportMetric(per-4*256, "overhead-B/session")
		runtime.KeepAlive(m)
	}
}

// BenchmarkHandlerRequest measures one request through Manager.Handler that
// finds its session by cookie and changes an attribute.
func BenchmarkHandlerRequest(b *testing.B) {
	m := benchManager(b)
	s, _ := m.Create("app")
	s.Commit()
	h := m.Handler("app", "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := FromRequest(r).Session(false)
		_ = s.Set("n", []byte{byte(len(r.URL.Path))})
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.Header.Set("Cookie", "JSESSIONID="+FormatCookieValue(s.ID(), "node1"))
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
