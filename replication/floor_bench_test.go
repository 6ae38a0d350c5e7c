package replication

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdproject/herd/session"
)

// BenchmarkReplicationFloor puts the throughput goals of session replication (async >= 0.9x and
// pooled >= 0.7x the throughput of replication off) next to what this machine charges for the work
// that any implementation has to do, all measured in one run:
//
//   - the CPU time of a request with replication off, the same load as BenchmarkReplicationModes;
//   - the work every change needs whatever the design: encode it once, and on each of the two peers
//     (the delta manager in a 3-node cluster; one with the backup manager and one backup) seal and
//     open it (AES-GCM), decode and validate it and apply it to the session store;
//   - moving it: a bare TCP round trip over loopback (plain Go sockets, no encryption, no framing),
//     one change per round trip as sync/pooled does at low concurrency, and the best case of async:
//     many changes per write.
//
// While CPU is the limit, a mode's throughput ratio is at most off/(off + cost per request), so a goal
// g leaves a budget of off*(1/g - 1) per request. The floors count only the work above and none of
// the goroutine switches, allocation, GC, acknowledgement bookkeeping or retries a real replicator
// has; when a floor exceeds its budget the goal is out of reach on this machine.
// Run: go test -run '^$' -bench ReplicationFloor -benchtime 1x ./replication
func BenchmarkReplicationFloor(b *testing.B) {
	d := floorDelta()
	enc, err := session.MarshalDelta(d)
	if err != nil {
		b.Fatal(err)
	}
	body := encodeBatch([][]byte{enc})
	const n = 100000
	encode := cpuPerOp(n, func(int) {
		if _, err := session.MarshalDelta(d); err != nil {
			b.Fatal(err)
		}
	})
	decode := cpuPerOp(n, func(int) { // a message of one change, as sync sends them
		if _, err := decodeBatch(body); err != nil {
			b.Fatal(err)
		}
	})
	const perBatch = 32 // async sends 20-40 changes per message in BenchmarkReplicationModes
	batch := encodeBatch(slices.Repeat([][]byte{enc}, perBatch))
	decodeBatched := cpuPerOp(n/perBatch, func(int) {
		if _, err := decodeBatch(batch); err != nil {
			b.Fatal(err)
		}
	}) / perBatch
	crypt := cpuPerOp(n, sealOpen(b, len(body)))
	apply := cpuPerOp(n, applyLoop(b, d))
	rt := bareRoundTrips(b, *loadClients, len(body), 1)
	batched := bareRoundTrips(b, 1, len(body), 256)
	off := runMode(b, "off").cpu

	syncFloor := encode + 2*(crypt+decode+apply+rt)
	backupFloor := encode + crypt + decode + apply + rt // the backup manager with one backup: one peer
	asyncFloor := encode + 2*(crypt+decodeBatched+apply+batched)
	budget := func(goal float64) float64 { return off * (1/goal - 1) }
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nCPU per request with replication off (3 nodes, %d clients): %.1fµs\n", *loadClients, off)
	fmt.Fprintf(&sb, "per change: encode %.2fµs; on each peer: seal+open %.2fµs, decode and validate %.2fµs (alone in its message) or %.2fµs (%d per message), apply %.2fµs\n",
		encode, crypt, decode, decodeBatched, perBatch, apply)
	fmt.Fprintf(&sb, "bare loopback TCP, %d-byte message and 16-byte answer: %.2fµs per round trip (%d pairs); %.2fµs per change with 256 per write\n",
		len(body), rt, *loadClients, batched)
	fmt.Fprintf(&sb, "%-28s %12s %14s %14s %s\n", "mode", "goal", "budget/req", "floor/req", "ceiling")
	for _, row := range []struct {
		name        string
		goal, floor float64
	}{
		{"async (batched, 2 peers)", 0.9, asyncFloor},
		{"sync/pooled (2 round trips)", 0.7, syncFloor},
		{"sync/pooled, backup (1 peer)", 0.7, backupFloor},
	} {
		fmt.Fprintf(&sb, "%-28s %11.2fx %12.2fµs %12.2fµs %.2fx\n", row.name, row.goal, budget(row.goal), row.floor, off/(off+row.floor))
	}
	b.ReportMetric(off, "off_cpu_µs/req")
	b.ReportMetric(off/(off+asyncFloor), "async_ceiling")
	b.ReportMetric(off/(off+syncFloor), "sync_ceiling")
	b.ReportMetric(off/(off+backupFloor), "sync_backup_ceiling")
	b.Log(sb.String())
}

// floorDelta is the change BenchmarkReplicationModes' requests make: a counter and 1 KiB of padding.
func floorDelta() session.Delta {
	now := time.Now()
	return session.Delta{ID: strings.Repeat("a", session.IDLength), App: "counter", Kind: session.KindChanged, Version: 2,
		Created: now, LastAccess: now, MaxInactive: 30 * time.Minute,
		Set: map[string][]byte{"n": []byte("42"), "pad": make([]byte, 1024)}}
}

// cpuPerOp runs f n times and returns the process CPU time per call, µs, the collection of its
// garbage included.
func cpuPerOp(n int, f func(i int)) float64 {
	f(0) // warm up
	runtime.GC()
	start := processCPU()
	for i := range n {
		f(i)
	}
	return float64(processCPU()-start) / 1e3 / float64(n)
}

// sealOpen returns a step that seals and opens a size-byte record with AES-256-GCM, as the channel
// does with every frame.
func sealOpen(b *testing.B, size int) func(int) {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	plain := make([]byte, size)
	buf := make([]byte, 0, size+aead.Overhead())
	return func(int) {
		sealed := aead.Seal(buf[:0], nonce, plain, nil)
		if _, err := aead.Open(sealed[:0], nonce, sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// applyLoop returns a step that applies d to a session store, one version newer each time.
func applyLoop(b *testing.B, d session.Delta) func(int) {
	sm, err := session.NewManager(session.Options{Route: "floor"})
	if err != nil {
		b.Fatal(err)
	}
	full := d
	full.Full, full.Version = true, 1
	if err := sm.ApplyRemote(full); err != nil {
		b.Fatal(err)
	}
	return func(i int) {
		next := d // the same attribute slices each time: the decoder's copies are counted in decode
		next.Version = uint64(i) + 2
		if err := sm.ApplyRemote(next); err != nil {
			b.Fatal(err)
		}
	}
}

// bareRoundTrips measures plain TCP over loopback for one second: pairs connections, each writing
// perWrite messages of size bytes at once and then waiting for a 16-byte answer. It returns the
// process CPU time per message, µs.
func bareRoundTrips(b *testing.B, pairs, size, perWrite int) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 64<<10)
				msg, answer := make([]byte, size*perWrite), make([]byte, 16)
				for {
					if _, err := io.ReadFull(br, msg); err != nil {
						return
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			})
		}
	})
	conns := make([]net.Conn, pairs)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			b.Fatal(err)
		}
	}
	counts := make([]int, pairs)
	start := processCPU()
	var senders sync.WaitGroup
	for i, c := range conns {
		senders.Go(func() {
			defer c.Close()
			msg, answer := make([]byte, size*perWrite), make([]byte, 16)
			for ctx.Err() == nil {
				if _, err := c.Write(msg); err != nil {
					return
				}
				if _, err := io.ReadFull(c, answer); err != nil {
					return
				}
				counts[i] += perWrite
			}
		})
	}
	senders.Wait()
	cpu := processCPU() - start
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		b.Fatal("no round trip completed")
	}
	return float64(cpu) / 1e3 / float64(total)
}
