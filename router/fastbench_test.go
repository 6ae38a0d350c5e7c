package router

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"
)

// rawNode answers every request on its connections with resp, reading heads without allocating:
// a backend that costs the benchmark nothing of its own.
func rawNode(t testing.TB, resp []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 16<<10)
				for {
					if err := skipHead(br); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// skipHead reads one request head (to its empty line).
func skipHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

// BenchmarkFastPath measures the router alone on its fast path: a raw client sends GETs with a
// sticky cookie over one kept-alive connection to a raw node. allocs/op are the router's (the
// client and the node allocate nothing per request).
func BenchmarkFastPath(b *testing.B) {
	body := "hello, world\n"
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 23 Nov 2026 10:00:00 GMT\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	addr := rawNode(b, resp)
	r := startRouter(b, listen(b), nil, func(o *Options) { o.Settings.Backends = []string{addr}; o.Logger = nil })
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /bench/small HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\nCookie: JSESSIONID=abcdefghijklmnopqrstuvwxyz012345.n1\r\n\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	got := make([]byte, len(body))
	one := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := skipHead(br); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, got); err != nil {
			b.Fatal(err)
		}
	}
	one()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		one()
	}
}
