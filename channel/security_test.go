package channel

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestOutsidersAreRefused(t *testing.T) {
	checkGoroutines(t)
	b := startChannel(t, testConfig(t, "b"), func(c *Channel) { c.Handle(1, echo) })
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr error
	}{
		{"wrong secret", func(c *Config) { c.Secret = []byte("not-the-cluster-secret!") }, ErrHandshake},
		{"right secret, wrong cluster", func(c *Config) { c.Cluster = "other" }, ErrWrongCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "mallory")
			tc.mutate(&cfg)
			m := startChannel(t, cfg)
			before := b.Stats().HandshakeFailures
			_, err := m.Request(ctx, b.Addr(), Message{Type: 1})
			if !errors.Is(err, ErrPeerUnavailable) || !errors.Is(err, ErrHandshake) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want a handshake failure wrapping %v", err, tc.wantErr)
			}
			waitFor(t, 5*time.Second, "the server to count the failure", func() bool {
				return b.Stats().HandshakeFailures > before
			})
			if _, ok := b.Stats().Peers["mallory"]; ok {
				t.Fatal("the server registered the outsider as a peer")
			}
		})
	}
	a := startChannel(t, testConfig(t, "a"))
	if _, err := a.Request(ctx, b.Addr(), Message{Type: 1}); err != nil {
		t.Fatalf("member refused after outsiders: %v", err)
	}
}

func TestGarbageBeforeHandshake(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t, "b")
	cfg.HandshakeTimeout = 300 * time.Millisecond
	b := startChannel(t, cfg, func(c *Channel) { c.Handle(1, echo) })
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()
	if _, err := a.Request(ctx, b.Addr(), Message{Type: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 64)))},
		{"right magic, bad version", append([]byte("HERD\x07"), make([]byte, 40)...)},
		{"short hello then silence", []byte("HERD")},
		{"silence", nil},
		{"hello with low-order point", append(append([]byte("HERD\x01"), clusterTagOf(t, "test")...), make([]byte, 32)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Stats().HandshakeFailures
			nc, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if len(tc.bytes) > 0 {
				if _, err := nc.Write(tc.bytes); err != nil {
					t.Fatal(err)
				}
			}
			expectClosed(t, nc)
			waitFor(t, 5*time.Second, "the failure to be counted", func() bool {
				return b.Stats().HandshakeFailures > before
			})
			if _, err := a.Request(ctx, b.Addr(), Message{Type: 1}); err != nil {
				t.Fatalf("member's existing connection broken: %v", err)
			}
		})
	}
}

func clusterTagOf(t *testing.T, cluster string) []byte {
	k, err := deriveClusterKeys(testSecret, cluster, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return k.tag[:]
}

// TestBadFramesCloseOnlyTheirConnection drives an authenticated client by
// hand and sends what a broken or hostile member could.
func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	checkGoroutines(t)
	bcfg := testConfig(t, "b")
	b := startChannel(t, bcfg, func(c *Channel) { c.Handle(1, echo) })
	a := startChannel(t, testConfig(t, "a"))
	ctx := context.Background()
	if _, err := a.Request(ctx, b.Addr(), Message{Type: 1}); err != nil {
		t.Fatal(err)
	}
	// A valid request recorded on one connection, for the replay cases.
	victim := dialRaw(t, b.Addr(), testConfig(t, "raw"), connMessages)
	recorded := victim.record(t, kindRequest, 1, 7, []byte("pay 100"))
	victim.write(t, recorded)
	if f, err := victim.read(); err != nil || f.kind != kindReply || f.id != 7 || string(f.body) != "raw:pay 100" {
		t.Fatalf("recorded request: %+v, %v", f, err)
	}

	huge := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
	for _, tc := range []struct {
		name string
		send func(t *testing.T, p *rawPeer)
	}{
		{"huge length prefix", func(t *testing.T, p *rawPeer) { p.write(t, huge) }},
		{"length just over MaxFrame", func(t *testing.T, p *rawPeer) {
			p.write(t, binary.BigEndian.AppendUint32(nil, uint32(bcfg.MaxFrame+overhead+1)))
		}},
		{"length below the minimum", func(t *testing.T, p *rawPeer) { p.write(t, []byte{0, 0, 0, 3, 1, 2, 3}) }},
		{"truncated record", func(t *testing.T, p *rawPeer) {
			rec := p.record(t, kindRequest, 1, 1, []byte("hello"))
			p.write(t, rec[:len(rec)-5])
			_ = p.nc.(*net.TCPConn).CloseWrite()
		}},
		{"replay on a new connection", func(t *testing.T, p *rawPeer) { p.write(t, recorded) }},
		{"replay on the same connection", func(t *testing.T, p *rawPeer) {
			rec := p.record(t, kindRequest, 1, 1, []byte("pay 100"))
			p.write(t, rec)
			if f, err := p.read(); err != nil || f.kind != kindReply {
				t.Fatalf("first request: %+v, %v", f, err)
			}
			p.write(t, rec)
		}},
		{"flipped ciphertext bit", func(t *testing.T, p *rawPeer) {
			rec := p.record(t, kindRequest, 1, 1, []byte("hello"))
			rec[lenSize+2] ^= 1
			p.write(t, rec)
		}},
		{"reordered records", func(t *testing.T, p *rawPeer) {
			r1 := p.record(t, kindRequest, 1, 1, nil)
			r2 := p.record(t, kindRequest, 1, 2, nil)
			p.write(t, append(r2, r1...))
		}},
		{"unknown frame kind", func(t *testing.T, p *rawPeer) { p.write(t, p.record(t, 99, 1, 1, nil)) }},
		{"reply sent to the server", func(t *testing.T, p *rawPeer) { p.write(t, p.record(t, kindReply, 1, 1, nil)) }},
		{"stream data on a message connection", func(t *testing.T, p *rawPeer) { p.write(t, p.record(t, kindData, 0, 0, []byte("x"))) }},
		{"second auth record", func(t *testing.T, p *rawPeer) { p.write(t, p.record(t, kindAuth, 0, 0, nil)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Stats().FrameErrors
			p := dialRaw(t, b.Addr(), testConfig(t, "raw"), connMessages)
			tc.send(t, p)
			expectClosed(t, p.nc)
			waitFor(t, 5*time.Second, "the frame error to be counted", func() bool {
				return b.Stats().FrameErrors > before
			})
			if _, err := a.Request(ctx, b.Addr(), Message{Type: 1}); err != nil {
				t.Fatalf("other connection broken: %v", err)
			}
		})
	}
}

func TestBadStreamFrames(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t, "b")
	cfg.StreamWindow = 1 << 20
	b := startChannel(t, cfg, func(c *Channel) {
		c.HandleStream(1, func(ctx context.Context, _ string, _ Message, _ io.Reader) error {
			<-ctx.Done() // never reads: the window fills
			return ctx.Err()
		})
	})
	for _, tc := range []struct {
		name string
		send func(t *testing.T, p *rawPeer)
	}{
		{"data before open", func(t *testing.T, p *rawPeer) { p.write(t, p.record(t, kindData, 0, 0, []byte("x"))) }},
		{"data beyond the window", func(t *testing.T, p *rawPeer) {
			p.write(t, p.record(t, kindOpen, 1, 0, nil))
			chunk := make([]byte, 512<<10)
			for range 3 {
				p.write(t, p.record(t, kindData, 0, 0, chunk))
			}
		}},
		{"second end", func(t *testing.T, p *rawPeer) {
			p.write(t, p.record(t, kindOpen, 1, 0, nil))
			p.write(t, p.record(t, kindEnd, 0, 0, nil))
			p.write(t, p.record(t, kindEnd, 0, 0, nil))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Stats().FrameErrors
			p := dialRaw(t, b.Addr(), testConfig(t, "raw"), connStream)
			tc.send(t, p)
			expectClosed(t, p.nc)
			waitFor(t, 5*time.Second, "the frame error to be counted", func() bool {
				return b.Stats().FrameErrors > before
			})
		})
	}
}
