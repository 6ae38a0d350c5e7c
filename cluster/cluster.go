// Package cluster builds a herd node from its configuration: the session manager, the HTTP container
// with its valves and apps, and (as the cluster features land) membership, the cluster channel,
// replication and farming. It is the only package that knows all of them, and it owns their start and
// stop order: things that serve others start first and stop last.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/config"
	"github.com/herdproject/herd/farming"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/replication"
	"github.com/herdproject/herd/server"
	"github.com/herdproject/herd/session"
	"github.com/herdproject/herd/valve"
)

// Options are the parts of a node that do not come from the config file.
type Options struct {
	// Logger is the node's log; nil discards.
	Logger *slog.Logger
	// AccessLogOut receives access log lines (default os.Stdout).
	AccessLogOut io.Writer
	// LogLevel, when set, is the level variable of Logger's handler; a reload changes it.
	LogLevel *slog.LevelVar
	// ConfigPath is the file the config came from, for SIGHUP and POST /manager/api/reload.
	ConfigPath string
}

// Node is one running herd node.
type Node struct {
	cfg      *config.Config
	log      *slog.Logger
	sessions *session.Manager
	server   *server.Server
	members  atomic.Pointer[membership.Provider] // nil for a standalone node
	channel  *channel.Channel                    // the cluster channel; nil for a standalone node
	repl     *replication.Replicator             // nil for a standalone node
	farm     atomic.Pointer[farming.Manager]     // nil for a standalone node and before Start
	limits   bundle.Limits
	metrics  *prometheus.Registry
	cmetrics *clusterMetrics

	// reload state
	reloadMu    sync.Mutex
	level       *slog.LevelVar
	accessOut   io.Writer
	configPath  string
	reloadHooks []func(*config.Config) error

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// New builds a node from a validated config. Nothing runs until Start.
func New(cfg *config.Config, opts Options) (*Node, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.Node.Name)
	n := &Node{cfg: cfg, log: log, level: opts.LogLevel, accessOut: opts.AccessLogOut, configPath: opts.ConfigPath}
	trusted := prefixes(cfg.Node.TrustedProxies)
	sm, err := session.NewManager(session.Options{
		Route:          cfg.Node.Name,
		CookieName:     cfg.Sessions.Cookie,
		MaxInactive:    dur(cfg.Sessions.MaxInactive),
		MaxSize:        int(cfg.Sessions.MaxSize),
		SweepInterval:  dur(cfg.Sessions.SweepInterval),
		TrustedProxies: trusted,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	vo, err := valveOptions(cfg, opts.AccessLogOut)
	if err != nil {
		return nil, err
	}
	lim := bundle.DefaultLimits()
	if cfg.Node.MaxBundleSize > 0 {
		lim.MaxTotalSize = int64(cfg.Node.MaxBundleSize)
		if lim.MaxFileSize > lim.MaxTotalSize {
			lim.MaxFileSize = lim.MaxTotalSize
		}
	}
	if cfg.Node.MaxBundleFiles > 0 {
		lim.MaxFiles = cfg.Node.MaxBundleFiles
	}
	n.limits = lim
	n.metrics = prometheus.NewRegistry()
	n.cmetrics = newClusterMetrics(n)
	if err := n.newReplication(sm); err != nil {
		return nil, err
	}
	srv, err := server.New(server.Options{
		Name:            cfg.Node.Name,
		HTTPAddr:        cfg.Node.HTTP,
		DeployDir:       cfg.Node.DeployDir,
		WorkDir:         cfg.Node.WorkDir,
		Sessions:        sm,
		Limits:          lim,
		AppStartTimeout: dur(cfg.Node.AppStartTimeout),
		AppStopTimeout:  dur(cfg.Node.AppStopTimeout),
		ShutdownTimeout: dur(cfg.Node.ShutdownTimeout),
		Valves:          vo,
		TrustedProxies:  trusted,
		ManagerToken:    cfg.Manager.Token,
		ManagerUser:     cfg.Manager.Username,
		ManagerPassword: cfg.Manager.Password,
		Logger:          log,
		Members:         n.memberList,
		AppsChanged:     n.publishApps,
		Ready:           n.ready,
		Reload:          n.reloadFile,
		Stats:           n.stats,
		FarmDir:         farmDir(cfg),
		Metrics:         n.metrics,
	})
	if err != nil {
		return nil, err
	}
	n.sessions, n.server = sm, srv
	return n, nil
}

// farmDir is the farm watch dir uploads go to: only on a clustered node that has one.
func farmDir(cfg *config.Config) string {
	if !clustered(cfg) {
		return ""
	}
	return cfg.Cluster.Farm.WatchDir
}

// clustered reports whether the config puts the node in a cluster.
func clustered(cfg *config.Config) bool {
	k := cfg.Cluster.Membership.Kind
	return k != config.KindNone && k != ""
}

// newReplication builds the cluster channel and the session replicator of a clustered node.
func (n *Node) newReplication(sm *session.Manager) error {
	cfg := n.cfg
	if !clustered(cfg) {
		return nil
	}
	rp := cfg.Cluster.Replication
	cc := channel.DefaultConfig()
	if cfg.Cluster.Membership.Profile == config.ProfileLocal {
		cc = channel.DefaultLocalConfig()
	}
	cc.Name, cc.Cluster, cc.Secret, cc.Bind = cfg.Node.Name, cfg.Cluster.Name, []byte(cfg.Cluster.Secret), rp.Bind
	cc.PoolSize = max(rp.PoolSize, 2)
	cc.AckTimeout = max(dur(rp.AckTimeout), time.Second)
	cc.Logger = n.log
	if rp.TLS.Cert != "" {
		tc, err := channel.LoadTLSConfig(rp.TLS.Cert, rp.TLS.Key, rp.TLS.CA)
		if err != nil {
			return fmt.Errorf("cluster.replication.tls: %w", err)
		}
		cc.TLS = tc
	}
	ch, err := channel.New(cc)
	if err != nil {
		return fmt.Errorf("cluster channel: %w", err)
	}
	repl, err := replication.New(replication.Config{
		Name: cfg.Node.Name, Sessions: sm, Channel: ch, Manager: rp.Manager, Backups: rp.Backups,
		Mode: rp.Mode, PoolSize: rp.PoolSize, AckTimeout: dur(rp.AckTimeout), AckPolicy: rp.AckPolicy,
		QueueSize:     rp.QueueSize,
		DiscoveryWait: max(3*dur(cfg.Cluster.Membership.Frequency), 300*time.Millisecond),
		Logger:        n.log, Metrics: n.metrics,
	})
	if err != nil {
		return fmt.Errorf("cluster.replication: %w", err)
	}
	n.channel, n.repl = ch, repl
	n.reloadHooks = append(n.reloadHooks, func(next *config.Config) error {
		r := next.Cluster.Replication
		if err := repl.SetMode(r.Mode, dur(r.AckTimeout), r.AckPolicy); err != nil {
			return fmt.Errorf("cluster.replication: %w", err)
		}
		return nil
	})
	return nil
}

// newFarm builds the node's farming manager: every clustered node receives what the cluster farms;
// the ones with cluster.farm.watchDir also farm what is dropped there.
func (n *Node) newFarm(p membership.Provider) (*farming.Manager, error) {
	fc := n.cfg.Cluster.Farm
	keys, err := farming.ParsePublicKeys(fc.Signing.Keys)
	if err != nil {
		return nil, fmt.Errorf("cluster.farm.signing.keys: %w", err)
	}
	tmp := fc.TempDir
	if tmp == "" {
		tmp = filepath.Join(n.cfg.Node.WorkDir, "farm")
	}
	cfg := farming.Config{Name: n.cfg.Node.Name, WatchDir: fc.WatchDir, TempDir: tmp,
		Signing:             farming.Signing{Required: fc.Signing.Required, Keys: keys},
		UndeployOldVersions: fc.UndeployOldVersions, Limits: n.limits, MaxBundleSize: int64(n.cfg.Node.MaxBundleSize),
		Logger: n.log}
	if n.cfg.Cluster.Membership.Profile == config.ProfileLocal {
		cfg.Settle, cfg.SyncInterval = 300*time.Millisecond, 2*time.Second
	}
	farm, err := farming.New(cfg, n.channel, p, farmDeployer{n.server})
	if err != nil {
		return nil, fmt.Errorf("cluster.farm: %w", err)
	}
	return farm, nil
}

// Farm is the node's farming manager (nil for a standalone node or before Start).
func (n *Node) Farm() *farming.Manager { return n.farm.Load() }

// farmDeployer lets farming deploy into the node's HTTP container.
type farmDeployer struct{ s *server.Server }

// DeployBundle deploys the bundle file at path (farming.Deployer).
func (d farmDeployer) DeployBundle(ctx context.Context, path string) error {
	_, err := d.s.DeployFile(ctx, path)
	return err
}

// UndeployBundle undeploys the app with key (farming.Deployer).
func (d farmDeployer) UndeployBundle(ctx context.Context, key string) error {
	return d.s.Undeploy(ctx, key)
}

// DeployedApps lists the node's apps (farming.Deployer).
func (d farmDeployer) DeployedApps() []farming.App {
	apps := d.s.Apps()
	out := make([]farming.App, 0, len(apps))
	for _, a := range apps {
		out = append(out, farming.App{Key: a.Key, Name: a.Name, Version: a.Version, Context: a.Context,
			SHA256: a.SHA256, State: a.State, Sessions: a.Sessions})
	}
	return out
}

// stats adds the cluster sections to GET /manager/api/stats.
func (n *Node) stats() map[string]any {
	out := map[string]any{}
	if n.repl != nil {
		out["replication"] = n.repl.Stats()
	}
	if f := n.farm.Load(); f != nil {
		out["farm"] = f.Stats()
	}
	return out
}

// Replication is the node's session replicator (nil for a standalone node).
func (n *Node) Replication() *replication.Replicator { return n.repl }

// advertised turns a bound address into one peers can dial: a wildcard host is replaced by the
// membership's advertise host when there is one.
func (n *Node) advertised(bound string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() && n.cfg.Cluster.Membership.Advertise != "" {
		return net.JoinHostPort(n.cfg.Cluster.Membership.Advertise, port)
	}
	return bound
}

// valveOptions maps the config's valve settings to the server's.
func valveOptions(cfg *config.Config, out io.Writer) (server.ValveOptions, error) {
	format, err := valve.ParseAccessLogFormat(cfg.Node.AccessLog)
	if err != nil {
		return server.ValveOptions{}, fmt.Errorf("node.accessLog: %w", err)
	}
	var filter *regexp.Regexp
	if cfg.Cluster.Valve.Filter != "" {
		if filter, err = regexp.Compile(cfg.Cluster.Valve.Filter); err != nil {
			return server.ValveOptions{}, fmt.Errorf("cluster.valve.filter: %w", err)
		}
	}
	if out == nil {
		out = os.Stdout
	}
	return server.ValveOptions{AccessLog: format, AccessLogOut: out, Allow: prefixes(cfg.Node.Allow),
		Deny: prefixes(cfg.Node.Deny), Filter: filter}, nil
}

// Server is the node's HTTP container (to Mount in-process apps before Start).
func (n *Node) Server() *server.Server { return n.server }

// Sessions is the node's session manager.
func (n *Node) Sessions() *session.Manager { return n.sessions }

// Start runs the node: the session sweeper, then the HTTP container.
func (n *Node) Start(ctx context.Context) error {
	ctx, n.cancel = context.WithCancel(ctx)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.sessions.Run(ctx)
	}()
	if err := n.server.Start(ctx); err != nil {
		n.cancel()
		n.wg.Wait()
		return err
	}
	if n.channel != nil {
		if err := n.channel.Start(ctx); err != nil {
			_ = n.Shutdown(context.WithoutCancel(ctx))
			return fmt.Errorf("cluster.replication.bind: %w", err)
		}
	}
	if err := n.startMembership(ctx); err != nil {
		_ = n.Shutdown(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// startMembership announces this node to the cluster (after the HTTP listener is up, so peers that
// learn about it can reach it).
func (n *Node) startMembership(ctx context.Context) error {
	local := membership.Member{Name: n.cfg.Node.Name, Route: n.cfg.Node.Name, Role: membership.RoleNode,
		HTTPAddr: n.advertised(n.server.Addr()), Meta: membership.Meta{Apps: memberApps(n.server.Apps())}}
	if n.channel != nil {
		local.ChannelAddr = n.advertised(n.channel.Addr())
	}
	p, err := NewMembership(n.cfg, local, n.log)
	if err != nil || p == nil {
		return err
	}
	// Farming registers its channel messages before anyone can know this member.
	farm, err := n.newFarm(p)
	if err != nil {
		_ = p.Shutdown()
		return err
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Shutdown()
		_ = farm.Close()
		return fmt.Errorf("membership: %w", err)
	}
	n.members.Store(&p)
	if n.repl != nil {
		if err := n.repl.Start(p); err != nil {
			_ = farm.Close()
			return err
		}
	}
	if err := farm.Start(ctx); err != nil {
		_ = farm.Close()
		return fmt.Errorf("farm: %w", err)
	}
	n.farm.Store(farm)
	n.publishApps() // apps deployed while membership was starting
	sub := p.Subscribe()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		n.recordMemberEvents(ctx, sub.C())
	}()
	n.log.Info("joined the cluster", "event", "cluster.joined", "cluster", n.cfg.Cluster.Name,
		"membership", n.cfg.Cluster.Membership.Kind)
	return nil
}

// recordMemberEvents copies membership changes into the node's recent-events log until ctx ends or the
// provider closes the stream.
func (n *Node) recordMemberEvents(ctx context.Context, events <-chan membership.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			n.cmetrics.event(ev.Type)
			if ev.Type == membership.EventUpdate {
				continue
			}
			n.server.RecordEvent(server.Event{Type: "member." + ev.Type.String(), Member: ev.Member.Name,
				Message: fmt.Sprintf("%s %s at %s", ev.Member.Role, ev.Member.State, ev.Member.HTTPAddr)})
		}
	}
}

// provider is the membership provider, or nil for a standalone node or before Start.
func (n *Node) provider() membership.Provider {
	if p := n.members.Load(); p != nil {
		return *p
	}
	return nil
}

// Members is the cluster as this node sees it (this node alone when standalone).
func (n *Node) Members() []membership.Member {
	if p := n.provider(); p != nil {
		return p.Members()
	}
	return nil
}

func (n *Node) memberList() []server.MemberInfo {
	p := n.provider()
	if p == nil {
		return []server.MemberInfo{n.server.LocalMember()}
	}
	return memberInfos(p.Members(), n.cfg.Node.Name)
}

// publishApps puts the apps this node serves into its membership record, for the router.
func (n *Node) publishApps() {
	p := n.provider()
	if p == nil {
		return
	}
	apps := memberApps(n.server.Apps())
	if err := p.UpdateLocal(func(m *membership.Member) { m.Meta.Apps = apps }); err != nil {
		n.log.Warn("membership record not updated", "event", "cluster.record_error", "err", err)
	}
}

// ready is the node's extra /readyz condition: joined the cluster when it is in one.
func (n *Node) ready() error {
	if clustered(n.cfg) && n.provider() == nil {
		return errors.New("not joined the cluster yet")
	}
	if n.repl != nil {
		if err := n.repl.Ready(); err != nil {
			return err
		}
	}
	if clustered(n.cfg) {
		f := n.farm.Load()
		if f == nil {
			return errors.New("farm: not started")
		}
		return f.CheckReady()
	}
	return nil
}

// Addr is the node's HTTP address.
func (n *Node) Addr() string { return n.server.Addr() }

// Shutdown drains and stops the node; safe to call twice.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() {
		var errs []error
		p := n.provider()
		if p != nil { // peers stop routing here at once instead of waiting for failure detection
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := p.Leave(lctx); err != nil {
				n.log.Warn("leave", "event", "cluster.leave_error", "err", err)
			}
			cancel()
		}
		errs = append(errs, n.server.Shutdown(ctx))
		if n.repl != nil { // queued changes get a moment to reach the peers
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			errs = append(errs, n.repl.Close(rctx))
			cancel()
		}
		if f := n.farm.Load(); f != nil {
			errs = append(errs, f.Close())
		}
		if n.channel != nil {
			errs = append(errs, n.channel.Shutdown())
		}
		if p != nil {
			errs = append(errs, p.Shutdown())
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

func dur(d config.Duration) time.Duration { return time.Duration(d) }

func prefixes(in []config.CIDR) []netip.Prefix {
	if in == nil {
		return nil
	}
	out := make([]netip.Prefix, 0, len(in))
	for _, c := range in {
		out = append(out, c.Prefix)
	}
	return out
}
