package gossip

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
	"github.com/herdproject/herd/membership/internal/wire"
)

// mapResolver is a DNS stand-in whose answers the test changes, like the
// endpoints behind a Kubernetes headless service.
type mapResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
}

func (r *mapResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts[host] = addrs
}

func (r *mapResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.hosts[host]; len(a) > 0 {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestDNSSeedReresolved starts two members whose only seed is a name that
// resolves to nothing, then points the name at one of them: the rejoin loop
// must re-resolve it and bring them together.
func TestDNSSeedReresolved(t *testing.T) {
	res := &mapResolver{hosts: map[string][]string{}}
	c := newCluster(t, 1, func(cfg *Config) { cfg.Resolver = res })
	a := c.members["node1"]
	_, port, _ := net.SplitHostPort(a.Addr())
	b := c.start("node2", func(cfg *Config) { cfg.Seeds = []string{"herd.demo.svc.cluster.local:" + port} })
	if got := testutil.Names(b.Members()); !equal(got, []string{"node2"}) {
		t.Fatalf("node2 joined before the name resolved: %v", got)
	}
	res.set("herd.demo.svc.cluster.local", "127.0.0.1")
	c.waitConverged("node1", "node2")
}

// TestStaticMemberList gives every member the same fixed list (itself
// included) and starts them one by one: the first ones find nobody, the
// rejoin loop gathers them all.
func TestStaticMemberList(t *testing.T) {
	var seeds []string
	for i := 0; i < 3; i++ {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", freeTCPUDPPort(t)))
	}
	c := &cluster{t: t, members: map[string]*Provider{}, recs: map[string]*testutil.Recorder{}}
	c.base = DefaultLocalConfig()
	c.base.Cluster, c.base.Secret, c.base.Logger = "static", testSecret, testutil.Logger(t)
	for i, addr := range seeds {
		c.start(fmt.Sprintf("node%d", i+1), func(cfg *Config) { cfg.BindAddr, cfg.Seeds = addr, seeds })
	}
	c.waitConverged("node1", "node2", "node3")
}

// freeTCPUDPPort returns a port free for both TCP and UDP on 127.0.0.1.
func freeTCPUDPPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestForeignRecordRefusedByHook joins a raw memberlist node that holds the
// right keyring and label but whose record names another cluster: only the
// alive/merge hook stands in its way.
func TestForeignRecordRefusedByHook(t *testing.T) {
	c := newCluster(t, 2, nil)
	key, err := membership.DeriveKey(testSecret, c.base.Cluster, membership.PurposeGossipKeyring, 32)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := wire.Encode(wire.Record{Cluster: "other", Rev: 1, Member: membership.Member{
		Name: "mole", Route: "mole", Incarnation: 1}})
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertisePort = "mole", "127.0.0.1", 0, 0
	mc.Keyring, _ = memberlist.NewKeyring(nil, key)
	mc.Label = "herd/" + c.base.Cluster
	mc.Delegate = rawMeta(meta)
	mc.LogOutput = io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	_, _ = ml.Join([]string{c.members["node1"].Addr()})
	testutil.Eventually(t, 3*time.Second, func() error {
		if c.members["node1"].Stats().Refused == 0 {
			return fmt.Errorf("mole not refused yet")
		}
		return nil
	})
	for _, n := range []string{"node1", "node2"} {
		if got := testutil.Names(c.members[n].Members()); !equal(got, []string{"node1", "node2"}) {
			t.Fatalf("%s sees %v", n, got)
		}
	}
}

type rawMeta []byte

func (m rawMeta) NodeMeta(int) []byte                  { return m }
func (rawMeta) NotifyMsg([]byte)                       {}
func (rawMeta) GetBroadcasts(int, int) [][]byte        { return nil }
func (rawMeta) LocalState(bool) []byte                 { return nil }
func (rawMeta) MergeRemoteState(buf []byte, join bool) {}
