package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herdproject/herd/cluster"
	"github.com/herdproject/herd/config"
)

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (.yaml, .yml or .xml); none: a standalone node on loopback")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
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
	if cfg.Manager.Token == "" && cfg.Manager.Username == "" {
		cfg.Manager.Token = randomToken()
		log.Warn("manager.token is not set: generated one for this run", "event", "node.generated_token",
			"token", cfg.Manager.Token)
	}
	node, err := cluster.New(cfg, cluster.Options{Logger: log, AccessLogOut: stdout, LogLevel: level, ConfigPath: *cfgPath})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := node.Start(ctx); err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case <-hup:
			if err := node.ReloadFile(); err != nil {
				log.Error("config not reloaded", "event", "config.reload_failed", "err", err)
			}
		}
	}
	stop() // a second signal now kills the process the default way
	log.Info("shutting down", "event", "node.shutdown")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Node.ShutdownTimeout)+30*time.Second)
	defer cancel()
	return node.Shutdown(sctx)
}

// loadConfig reads the config file, or returns the standalone defaults when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		cfg := config.Default()
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return &cfg, nil
	}
	return config.Load(path)
}

// newLogger builds the process's logger; lv (when not nil) receives the level so a reload can change it.
func newLogger(w io.Writer, level, format string, lv *slog.LevelVar) (*slog.Logger, error) {
	if level == "" {
		level = "info"
	}
	if lv == nil {
		lv = new(slog.LevelVar)
	}
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("node.logLevel: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("node.logFormat: %q is not text or json", format)
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
