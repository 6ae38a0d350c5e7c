package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/gossip"
	"github.com/herdproject/herd/replication"
)

// TestHostileClientsAndPeers runs a real cluster (three nodes and the router) and throws at it what
// hostile or broken clients and peers send: slowloris connections and oversized headers on the node
// and router ports, and members with the wrong secret on the membership and channel ports (the
// channel carries replication and farming). Each gets a clean refusal, and the cluster keeps serving
// sessions the whole time.
func TestHostileClientsAndPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	c := startE2ECluster(t, "delta", "pooled")
	node, router := c.addrs[0], c.router
	serving := func(what string) {
		t.Helper()
		client := &http.Client{Timeout: 5 * time.Second}
		for _, a := range []string{node, router} {
			resp, err := client.Get("http://" + a + "/counter/get")
			if err != nil {
				t.Fatalf("%s: %s stopped serving: %v", what, a, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %s answered %d", what, a, resp.StatusCode)
			}
		}
	}

	// Slowloris: many connections that trickle a header and never finish it.
	var wg sync.WaitGroup
	closedAfter := make(chan time.Duration, 100)
	for _, a := range []string{node, router} {
		for range 50 {
			conn, err := net.Dial("tcp", a)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				start := time.Now()
				if _, err := fmt.Fprint(conn, "GET /counter/get HTTP/1.1\r\nHost: x\r\n"); err != nil {
					return
				}
				buf := make([]byte, 1)
				for time.Since(start) < 30*time.Second {
					if _, err := fmt.Fprint(conn, "X-Slow: a\r\n"); err != nil {
						closedAfter <- time.Since(start)
						return
					}
					_ = conn.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := conn.Read(buf); err != nil && !isTimeout(err) {
						closedAfter <- time.Since(start)
						return
					}
				}
			}()
		}
	}
	serving("under slowloris")

	// Oversized headers: 431 from both, nothing else disturbed.
	for _, a := range []string{node, router} {
		status := rawStatus(t, a, "GET /counter/get HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 2<<20)+"\r\n\r\n")
		if status != 431 && status != 400 {
			t.Fatalf("%s answered %d to a 2 MiB header", a, status)
		}
	}
	serving("after oversized headers")

	// A member with the wrong secret on the membership port is kept out.
	gc := gossip.DefaultLocalConfig()
	gc.Cluster, gc.Secret = "e2e-repl", "not-the-cluster-secret-0123456789"
	gc.Local = membership.Member{Name: "intruder", Route: "intruder", Role: membership.RoleNode, HTTPAddr: "127.0.0.1:1"}
	gc.Seeds = []string{c.gossip[0]}
	intruder, err := gossip.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	_ = intruder.Start(context.Background()) // the join fails; the provider keeps trying
	defer intruder.Shutdown()
	time.Sleep(time.Second)
	if n := len(intruder.Members()); n != 1 {
		t.Fatalf("the wrong-secret member sees %d members", n)
	}
	members := waitHTTP(t, "http://"+node+"/manager/api/members", func(s int, _ string) bool { return s == 200 })
	if strings.Contains(members, "intruder") {
		t.Fatalf("the node lists the wrong-secret member: %s", members)
	}

	// A peer with the wrong secret on the channel port can send nothing: no session, no bundle.
	cc := channel.DefaultLocalConfig()
	cc.Name, cc.Cluster, cc.Secret, cc.Bind = "intruder", "e2e-repl", []byte("not-the-cluster-secret-0123456789"), ""
	ch, err := channel.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer ch.Shutdown()
	for _, typ := range []uint16{replication.TypeDeltas, replication.TypeTransfer, 0x0201, 0x0202} {
		if _, err := ch.Request(context.Background(), c.channels[0], channel.Message{Type: typ, Body: []byte{0x80}}); err == nil {
			t.Fatalf("message type %#x from a wrong-secret peer was answered", typ)
		}
	}
	serving("after wrong-secret peers")

	// The slowloris connections were closed by the servers' header timeout, not left open.
	wg.Wait()
	close(closedAfter)
	n := 0
	for d := range closedAfter {
		n++
		if d > 20*time.Second {
			t.Fatalf("a slowloris connection stayed open %v", d)
		}
	}
	if n != 100 {
		t.Fatalf("%d of 100 slowloris connections were closed by the server", n)
	}
	serving("at the end")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// rawStatus sends a raw request and returns the status code of the answer (0 if none).
func rawStatus(t *testing.T, addr, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = conn.Write([]byte(req)) }()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0
	}
	var code int
	fmt.Sscanf(line, "HTTP/1.1 %d", &code)
	return code
}
