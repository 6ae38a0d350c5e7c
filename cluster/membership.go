package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/herdproject/herd/config"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/gossip"
	"github.com/herdproject/herd/membership/multicast"
	"github.com/herdproject/herd/server"
)

// Version is herd's version as members advertise it; cmd/herd sets it at start-up.
var Version = "dev"

// NewMembership builds the membership provider the config asks for, announcing local. It returns
// (nil, nil) for a standalone node (kind none). The router uses it too, with local.Role = RoleRouter.
func NewMembership(cfg *config.Config, local membership.Member, log *slog.Logger) (membership.Provider, error) {
	mc := cfg.Cluster.Membership
	local.Meta.Version = Version
	switch mc.Kind {
	case config.KindNone, "":
		return nil, nil
	case config.KindMulticast:
		c := multicast.DefaultLANConfig()
		if mc.Profile == config.ProfileLocal {
			c = multicast.DefaultLocalConfig()
		}
		c.Cluster, c.Secret, c.Local, c.Logger = cfg.Cluster.Name, cfg.Cluster.Secret, local, log
		if mc.Address != "" {
			c.Address = mc.Address
		}
		c.Interface = mc.Interface
		if mc.TTL > 0 {
			c.TTL = mc.TTL
		}
		if f := time.Duration(mc.Frequency); f > 0 {
			c.Frequency = f
		}
		if d := time.Duration(mc.DropTime); d > 0 {
			c.DropTime = d
			c.SuspectTime = d / 2
		}
		return multicast.New(c)
	case config.KindGossip, config.KindStatic:
		c := gossip.DefaultLANConfig()
		if mc.Profile == config.ProfileLocal {
			c = gossip.DefaultLocalConfig()
		}
		c.Cluster, c.Secret, c.Local, c.Logger = cfg.Cluster.Name, cfg.Cluster.Secret, local, log
		if mc.Bind != "" {
			c.BindAddr = mc.Bind
		}
		if mc.Advertise != "" {
			c.AdvertiseAddr = mc.Advertise
			if _, _, err := net.SplitHostPort(mc.Advertise); err != nil {
				_, port, _ := net.SplitHostPort(c.BindAddr)
				c.AdvertiseAddr = net.JoinHostPort(mc.Advertise, port)
			}
		}
		c.Seeds = append([]string(nil), mc.Seeds...)
		if r := time.Duration(mc.RejoinInterval); r > 0 {
			c.RejoinInterval = r
		}
		return gossip.New(c)
	}
	return nil, fmt.Errorf("cluster.membership.kind: %q is not supported", mc.Kind)
}

// memberInfos converts the membership view into the manager API's shape.
func memberInfos(members []membership.Member, localName string) []server.MemberInfo {
	out := make([]server.MemberInfo, 0, len(members))
	for _, m := range members {
		mi := server.MemberInfo{Name: m.Name, Route: m.Route, Role: m.Role.String(), State: m.State.String(),
			HTTP: m.HTTPAddr, Channel: m.ChannelAddr, Apps: []server.MemberAppInfo{}, Local: m.Name == localName,
			Incarnation: m.Incarnation, Version: m.Meta.Version, Draining: m.Meta.Draining}
		if !m.LastHeard.IsZero() {
			t := m.LastHeard
			mi.LastHeard = &t
		}
		for _, a := range m.Meta.Apps {
			mi.Apps = append(mi.Apps, server.MemberAppInfo{Name: a.Name, Version: a.Version, Context: a.Context})
		}
		out = append(out, mi)
	}
	return out
}

// memberApps is the local member's app list for its membership record.
func memberApps(apps []server.AppInfo) []membership.App {
	out := make([]membership.App, 0, len(apps))
	for _, a := range apps {
		out = append(out, membership.App{Name: a.Name, Version: a.Version, Context: a.Context})
	}
	return out
}
