// Package app is herd's sample process app (webapps/counter): a counter kept in
// the HTTP session that the herd node owns. The command in webapps/counter runs it;
// `herd up` runs the same code from the herd binary, so the demo needs no Go toolchain.
//
//	GET /counter/inc      increments the counter: {"node":"node1","count":3,"session":"<id>"}
//	GET /counter/get      the same without incrementing (count 0, session "" when none)
//	GET /counter/healthz  200 when up
//
// It listens on 127.0.0.1:$PORT, names itself after $HERD_NODE, serves
// under $HERD_CONTEXT (default /counter) and stops gracefully on SIGTERM.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/herdproject/herd/sdk"
)

// sessionName is the gorilla session name; the counter lives under the herd
// session attribute "counter|count".
const sessionName = "counter"

// Main runs the app as a command: it logs to stderr, stops on SIGTERM or
// interrupt, and returns the process exit code.
func Main() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("counter.exit", slog.String("error", err.Error()))
		return 1
	}
	return 0
}

func run(ctx context.Context, log *slog.Logger) error {
	addr, err := sdk.ListenAddr()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	prefix := sdk.ContextPath()
	if prefix == "" {
		prefix = "/counter"
	}
	return serve(ctx, ln, newHandler(sdk.NodeName(), prefix, sdk.NewStore(sdk.Options{}), log), log)
}

// serve runs an HTTP server on ln until ctx is done, then drains it.
func serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("counter.start", slog.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	log.Info("counter.stop")
	return err
}

// answer is the JSON body of /inc and /get.
type answer struct {
	Node    string `json:"node"`
	Count   int    `json:"count"`
	Session string `json:"session"`
}

func newHandler(node, prefix string, store *sdk.Store, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	counter := func(inc bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s, err := store.Get(r, sessionName)
			if err != nil {
				log.Error("counter.session", slog.String("error", err.Error()))
				http.Error(w, "session unavailable", http.StatusInternalServerError)
				return
			}
			count, _ := s.Values["count"].(int)
			a := answer{Node: node, Count: count}
			if inc {
				a.Count++
				s.Values["count"] = a.Count
				if err := s.Save(r, w); err != nil { // before the body: it writes a header
					log.Error("counter.save", slog.String("error", err.Error()))
					http.Error(w, "session unavailable", http.StatusInternalServerError)
					return
				}
			}
			if inc || !s.IsNew {
				a.Session = s.ID
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			_ = json.NewEncoder(w).Encode(a)
		}
	}
	mux.HandleFunc("GET "+prefix+"/inc", counter(true))
	mux.HandleFunc("GET "+prefix+"/get", counter(false))
	return mux
}
