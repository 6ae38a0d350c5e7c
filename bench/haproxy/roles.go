package haproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herdproject/herd/internal/loadgen"
	"github.com/herdproject/herd/router"
	"github.com/herdproject/herd/server"
	"github.com/herdproject/herd/session"
)

// RoleEnv selects what a process of the benchmark binary does: "node", "router" or "load". The
// orchestrator starts the binary once per role, pinned to a CPU with taskset.
const RoleEnv = "HERD_BENCH_ROLE"

// SmallBody is the small response; LargeSize is the large one's size.
const (
	SmallBody = "hello, world\n"
	LargeSize = 64 << 10
)

// RunRole runs the role named by RoleEnv and returns the exit code; ok is false when RoleEnv is
// unset (the process is the orchestrator).
func RunRole() (code int, ok bool) {
	role := os.Getenv(RoleEnv)
	if role == "" {
		return 0, false
	}
	var err error
	switch role {
	case "node":
		err = runNode()
	case "router":
		err = runRouter()
	case "load":
		err = runLoad()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		return 1, true
	}
	return 0, true
}

// untilStopped waits for SIGTERM/SIGINT or the parent closing stdin.
func untilStopped() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	<-ctx.Done()
}

// benchApp answers /bench/small and /bench/64k inside an HTTP session (created on the first
// request), like an app behind the router would.
func benchApp() http.Handler {
	large := []byte(strings.Repeat("x", LargeSize))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := session.FromRequest(r).Session(true); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body := []byte(SmallBody)
		if strings.HasSuffix(r.URL.Path, "/64k") {
			body = large
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// runNode is a real herd node (server.Server with its valves and session manager) serving benchApp.
func runNode() error {
	name := os.Getenv("BENCH_NAME")
	sm, err := session.NewManager(session.Options{Route: name})
	if err != nil {
		return err
	}
	dir := os.Getenv("BENCH_DIR") // the orchestrator's, which removes it
	if dir == "" {
		d, err := os.MkdirTemp("", "herd-bench-node-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	srv, err := server.New(server.Options{Name: name, HTTPAddr: "127.0.0.1:0", WorkDir: dir, Sessions: sm,
		Logger: slog.New(slog.DiscardHandler), Valves: server.ValveOptions{AccessLogOut: io.Discard}})
	if err != nil {
		return err
	}
	if err := srv.Mount("bench", "/bench", benchApp()); err != nil {
		return err
	}
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	fmt.Printf("READY %s\n", srv.Addr())
	untilStopped()
	return srv.Shutdown(context.Background())
}

// runRouter is herd's router with the nodes as static backends (as HAProxy gets them).
func runRouter() error {
	r, err := router.New(router.Options{Addr: "127.0.0.1:0",
		Settings: router.Settings{Backends: strings.Split(os.Getenv("BENCH_BACKENDS"), ",")},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return err
	}
	if err := r.Start(context.Background()); err != nil {
		return err
	}
	if file := os.Getenv("BENCH_CPUPROFILE"); file != "" { // profile the router under load
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("READY %s\n", r.Addr())
	untilStopped()
	pprof.StopCPUProfile() // before the shutdown, which may outlast the parent's patience
	return r.Shutdown(context.Background())
}

// runLoad generates the load: each client keeps its own session cookie (sticky), targets are
// spread over the clients, and the result goes to stdout as JSON.
func runLoad() error {
	targets := strings.Split(os.Getenv("BENCH_TARGETS"), ",")
	conc, _ := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY"))
	dur, err := time.ParseDuration(os.Getenv("BENCH_DURATION"))
	if err != nil {
		return err
	}
	size, _ := strconv.Atoi(os.Getenv("BENCH_SIZE"))
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		Concurrency: conc, Duration: dur, Warmup: 20, Cookies: true,
		NewRequest: func(c int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, targets[c%len(targets)], nil)
		},
		Check: func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || len(body) != size {
				return fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	out := loadResult{Requests: res.Requests, Failures: res.Failures, PerSecond: res.PerSecond,
		P50: res.P50, P99: res.P99, Elapsed: res.Elapsed}
	if res.FirstErr != nil {
		out.FirstErr = res.FirstErr.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// loadResult is what the load role reports.
type loadResult struct {
	Requests  int           `json:"requests"`
	Failures  int           `json:"failures"`
	FirstErr  string        `json:"firstErr,omitempty"`
	PerSecond float64       `json:"perSecond"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
	Elapsed   time.Duration `json:"elapsed"`
}
