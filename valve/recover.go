package valve

import (
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Recover turns a panic in an in-process app or a later valve into a 500 response and an error log line
// with the stack, so one bad request never takes the node down. http.ErrAbortHandler is passed through:
// it is how a handler aborts a response on purpose.
func Recover(log *slog.Logger) Valve {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				id := ""
				if info := InfoFrom(r.Context()); info != nil {
					id = info.ID
				}
				log.Error("handler panic", "event", "request.panic", "request_id", id,
					"path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(w, "internal server error (request "+id+")", http.StatusInternalServerError)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
