package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herdproject/herd/cluster"
	"github.com/herdproject/herd/config"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/router"
)

// runRouter runs `herd router --config FILE`: the sticky front router. It joins the cluster's
// membership as a member with role router (holding no sessions), routes to the nodes it learns
// and to router.backends, reloads router settings on SIGHUP and drains on SIGINT/SIGTERM.
func runRouter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (.yaml, .yml or .xml); its cluster and router sections are used")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain: terminate TLS on router.http (HTTP/2 offered)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	h2c := fs.Bool("h2c", false, "also accept unencrypted HTTP/2 (prior knowledge) from clients")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	case *cfgPath == "":
		return usageError{"--config is required"}
	case (*tlsCert == "") != (*tlsKey == ""):
		return usageError{"--tls-cert and --tls-key go together"}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log, err := newLogger(stderr, cfg.Node.LogLevel, cfg.Node.LogFormat, level)
	if err != nil {
		return err
	}
	opts := router.OptionsFrom(cfg)
	opts.Logger, opts.H2C = log, *h2c
	if cfg.Node.AccessLog != config.AccessLogOff {
		opts.AccessLog = stdout
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Router.HTTP)
	if err != nil {
		return fmt.Errorf("router.http: %w", err)
	}
	opts.Listener = ln
	name := routerMemberName(cfg.Node.Name)
	local := membership.Member{Name: name, Route: strings.ReplaceAll(name, ".", "-"), Role: membership.RoleRouter,
		HTTPAddr: ln.Addr().String()}
	prov, err := cluster.NewMembership(cfg, local, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	if prov != nil {
		opts.Members = prov
	} else if len(cfg.Router.Backends) == 0 {
		log.Warn("no cluster membership and no router.backends: every request will get 404",
			"event", "router.no_backends")
	}
	return serveRouter(ctx, *cfgPath, cfg, opts, prov, log, level)
}

// serveRouter starts membership and the router, reloads on SIGHUP and shuts down in order on
// SIGINT/SIGTERM: leave the cluster, drain requests, stop membership.
func serveRouter(ctx context.Context, path string, cfg *config.Config, opts router.Options,
	prov membership.Provider, log *slog.Logger, level *slog.LevelVar) error {
	rt, err := router.New(opts)
	if err != nil {
		_ = opts.Listener.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if prov != nil {
		if err := prov.Start(ctx); err != nil {
			_ = prov.Shutdown()
			_ = opts.Listener.Close()
			return fmt.Errorf("membership: %w", err)
		}
	}
	// The router stops when this function says so, after leaving the cluster.
	if err := rt.Start(context.WithoutCancel(ctx)); err != nil {
		if prov != nil {
			_ = prov.Shutdown()
		}
		return err
	}
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			reloadRouter(path, cfg, rt, log, level)
		}
	}
	stop() // a second signal now kills the process the default way
	log.Info("shutting down", "event", "router.shutdown")
	if prov != nil { // nodes and other routers drop this member at once
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := prov.Leave(lctx); err != nil {
			log.Warn("leave", "event", "router.leave_error", "err", err)
		}
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), rt.Settings().DrainTimeout+5*time.Second)
	defer cancel()
	err = rt.Shutdown(sctx)
	if prov != nil {
		if perr := prov.Shutdown(); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// reloadRouter reads the config file again and applies its router settings (policy, retry and
// timeouts, health checks, drain timeout, backends) and node.logLevel. Changes that need a restart
// are reported, measured against the config the router started with.
func reloadRouter(path string, started *config.Config, rt *router.Router, log *slog.Logger, level *slog.LevelVar) {
	next, err := config.Load(path)
	if err != nil {
		log.Error("reload: config not applied", "event", "router.reload_error", "err", err)
		return
	}
	if err := config.CheckReload(*started, *next); err != nil {
		log.Warn("reload: some changes need a restart; applying the reloadable ones",
			"event", "router.reload_partial", "err", err)
	}
	if err := rt.Reload(router.SettingsFrom(next.Reloadable())); err != nil {
		log.Error("reload: router settings not applied", "event", "router.reload_error", "err", err)
	}
	rt.SetManagerAuth(next.Manager.Token, next.Manager.Username, next.Manager.Password)
	if err := level.UnmarshalText([]byte(next.Node.LogLevel)); err != nil && next.Node.LogLevel != "" {
		log.Error("reload: node.logLevel not applied", "event", "router.reload_error", "err", err)
	}
}

// routerMemberName is the router's member name: node.name with a "-router" suffix unless it already
// names a router, so that a router and a node configured on one host never share a name.
func routerMemberName(node string) string {
	if strings.Contains(strings.ToLower(node), "router") {
		return node
	}
	name := node + "-router"
	if len(name) > membership.MaxNameLen {
		name = name[len(name)-membership.MaxNameLen:]
	}
	return name
}
