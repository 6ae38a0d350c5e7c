package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/herdproject/herd/membership/internal/wire"
)

// delegate adapts memberlist's callbacks to the Provider. Each method only
// forwards; the contracts are memberlist's: the callbacks may run on
// memberlist's packet and probe goroutines (some with its node lock held),
// so the Provider never blocks in them and never calls back into memberlist.
type delegate struct{ p *Provider }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
	_ memberlist.PingDelegate  = delegate{}
)

// NodeMeta returns the local record (compact if the full one exceeds limit).
func (d delegate) NodeMeta(limit int) []byte { return d.p.nodeMeta(limit) }

// NotifyMsg receives a full record pushed by a peer.
func (d delegate) NotifyMsg(b []byte) { d.p.handleMsg(b) }

// GetBroadcasts has nothing to add: records travel in node meta.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState sends the full local record on push/pull (when meta is compact).
func (d delegate) LocalState(join bool) []byte { return d.p.localState() }

// MergeRemoteState receives a peer's full record on push/pull.
func (d delegate) MergeRemoteState(b []byte, join bool) { d.p.handleMsg(b) }

// NotifyJoin forwards a node seen alive for the first time (or again).
func (d delegate) NotifyJoin(n *memberlist.Node) { d.p.nodeAlive(n) }

// NotifyUpdate forwards a node whose meta changed.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.p.nodeAlive(n) }

// NotifyLeave forwards a node that left or was declared dead.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.p.nodeGone(n) }

// NotifyAlive refuses nodes whose record is invalid or of another cluster.
func (d delegate) NotifyAlive(n *memberlist.Node) error { return d.p.admit(n) }

// NotifyMerge refuses a push/pull merge that contains any foreign node.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.p.admit(n); err != nil {
			return err
		}
	}
	return nil
}

// AckPayload adds nothing to probe acks.
func (d delegate) AckPayload() []byte { return nil }

// NotifyPingComplete records a direct sign of life.
func (d delegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, payload []byte) {
	d.p.heard(n.Name)
}

// Errors returned by the admission hooks.
var (
	errForeignCluster = errors.New("member of another cluster")
	errNameMismatch   = errors.New("record name differs from node name")
)

// msgFullRecord prefixes a full record sent by SendReliable or push/pull.
const msgFullRecord byte = 'R'

func encodeMsg(record []byte) []byte { return append([]byte{msgFullRecord}, record...) }

// decodeMsg decodes a full-record message; it never panics.
func decodeMsg(b []byte) (wire.Record, error) {
	if len(b) == 0 || b[0] != msgFullRecord {
		return wire.Record{}, fmt.Errorf("%w: unknown message type", wire.ErrMalformed)
	}
	rec, err := wire.Decode(b[1:])
	if err != nil {
		return wire.Record{}, err
	}
	if rec.Partial {
		return wire.Record{}, fmt.Errorf("%w: partial record in a full-record message", wire.ErrMalformed)
	}
	return rec, nil
}

// memberlistConfig maps Config onto memberlist's, wiring the delegate,
// keyring, label and logger.
func (p *Provider) memberlistConfig() (*memberlist.Config, error) {
	c := p.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = p.name
	ip, port, _ := splitIPPort(c.BindAddr, true)
	mc.BindAddr, mc.BindPort = ip.String(), port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		aip, aport, _ := splitIPPort(c.AdvertiseAddr, false)
		mc.AdvertiseAddr, mc.AdvertisePort = aip.String(), aport
	}
	keyring, err := memberlist.NewKeyring(nil, p.key)
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	mc.Keyring = keyring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Label = "herd/" + c.Cluster
	mc.ProbeInterval, mc.ProbeTimeout, mc.IndirectChecks = c.ProbeInterval, c.ProbeTimeout, c.IndirectChecks
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = c.SuspicionMult, c.SuspicionMaxTimeoutMult
	mc.GossipInterval, mc.GossipNodes, mc.RetransmitMult = c.GossipInterval, c.GossipNodes, c.RetransmitMult
	mc.PushPullInterval, mc.GossipToTheDeadTime = c.PushPullInterval, c.GossipToTheDeadTime
	mc.TCPTimeout, mc.DeadNodeReclaimTime = c.TCPTimeout, c.DeadNodeReclaimTime
	mc.DNSConfigPath = "" // seeds reach memberlist as IP literals; it never does DNS itself
	d := delegate{p}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge, mc.Ping = d, d, d, d, d
	mc.Logger = log.New(&logWriter{logger: p.logger}, "", 0)
	return mc, nil
}

// logWriter turns memberlist's "[LEVEL] memberlist: text" lines into slog
// records at the matching level.
type logWriter struct{ logger *slog.Logger }

func (w *logWriter) Write(b []byte) (int, error) {
	line := bytes.TrimSpace(b)
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if bytes.HasPrefix(line, []byte(prefix)) {
			level = l
			line = bytes.TrimSpace(line[len(prefix):])
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.logger.Log(context.Background(), level, "gossip.memberlist", slog.String("text", string(line)))
	return len(b), nil
}

var _ io.Writer = (*logWriter)(nil)

func itoa(i int) string { return strconv.Itoa(i) }
