package router

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxy measures one sticky GET through the router to a real node, in process, over
// loopback (both sides' costs are included; see bench/haproxy for the pinned comparison).
func BenchmarkProxy(b *testing.B) {
	for _, size := range []int{13, 64 << 10} {
		b.Run(map[int]string{13: "small", 64 << 10: "64k"}[size], func(b *testing.B) {
			body := strings.Repeat("x", size)
			n := staticNode(b, "n1", "/bench", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, body)
			}))
			r := startRouter(b, listen(b), nil, func(o *Options) {
				o.Settings.Backends = []string{n.Addr()}
				o.Logger = nil
			})
			tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			url := r.url + "/bench/x"
			cookie := "JSESSIONID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.n1"
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Cookie", cookie)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
