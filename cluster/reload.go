package cluster

import (
	"fmt"
	"log/slog"

	"github.com/herdproject/herd/config"
)

// Reload applies a new configuration to the running node. Only the keys config marks reloadable
// change; if any other key differs, nothing is applied and the error names each such key (ports, node
// name, cluster identity and membership need a restart). What changes at once: the log level, the
// valve chain (access log format, allow/deny lists, the replication valve's filter) and the manager
// API's credentials. A new chain is built completely and swapped in: requests in flight finish on the
// old one, none is dropped.
func (n *Node) Reload(next *config.Config) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if err := config.CheckReload(*n.cfg, *next); err != nil {
		return err
	}
	changed := config.Diff(*n.cfg, *next)
	if len(changed) == 0 {
		n.log.Info("config reloaded: nothing changed", "event", "config.reloaded")
		return nil
	}
	vo, err := valveOptions(next, n.accessOut)
	if err != nil {
		return err
	}
	if n.level != nil && next.Node.LogLevel != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(next.Node.LogLevel)); err != nil {
			return fmt.Errorf("node.logLevel: %w", err)
		}
		n.level.Set(lv)
	}
	n.server.SetValves(vo)
	n.server.SetManagerAuth(next.Manager.Token, next.Manager.Username, next.Manager.Password)
	for _, h := range n.reloadHooks {
		if err := h(next); err != nil {
			return err
		}
	}
	n.cfg = next
	n.log.Info("config reloaded", "event", "config.reloaded", "changed", changed)
	return nil
}

// reloadFile loads the config file the node was started from and applies it.
func (n *Node) reloadFile() error {
	if n.configPath == "" {
		return fmt.Errorf("the node was started without a config file")
	}
	next, err := config.Load(n.configPath)
	if err != nil {
		return err
	}
	if next.Manager.Token == "" && next.Manager.Username == "" {
		next.Manager.Token = n.cfg.Manager.Token // keep the token generated at start
	}
	return n.Reload(next)
}

// ReloadFile re-reads the node's config file and applies it (SIGHUP).
func (n *Node) ReloadFile() error { return n.reloadFile() }
