package session

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
)

// bindingWriter adds the session cookie at the first write of the response
// and commits the session before the header goes out. When the commit
// fails (a synchronous replicator could not reach its peers and its policy
// says fail), the client gets 503 and the handler's writes are discarded.
type bindingWriter struct {
	http.ResponseWriter
	b       *Binding
	started bool // the header decision was made
	failed  bool // the commit failed: the response is our 503
}

// start runs once, before the first final header: cookie, commit, and the
// 503 when the commit failed. code is the handler's status (0: implicit).
// It reports whether the handler's response may proceed.
func (w *bindingWriter) start(code int) bool {
	if w.started {
		return !w.failed
	}
	w.started = true
	w.b.writeCookies(w.Header())
	if code == http.StatusSwitchingProtocols {
		return true // an upgrade: nothing to wait for
	}
	err := w.b.commitBeforeHeader()
	if err == nil {
		return true
	}
	w.failed = true
	w.b.m.log.Warn("session.commit.failed", slog.String("app", w.b.app), slog.String("error", err.Error()))
	h := w.Header()
	for k := range h { // the handler's headers describe a response that is not sent
		if k != "Set-Cookie" && k != "X-Request-Id" {
			delete(h, k)
		}
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Retry-After", "1")
	w.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w.ResponseWriter, "503 service unavailable: the session change could not be replicated\n")
	return false
}

var (
	_ http.Flusher  = (*bindingWriter)(nil)
	_ http.Hijacker = (*bindingWriter)(nil)
	_ io.ReaderFrom = (*bindingWriter)(nil)
)

// WriteHeader adds the cookie before a final status; informational 1xx
// headers (other than 101) pass through without it.
func (w *bindingWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		if !w.start(code) {
			return
		}
	} else if w.started {
		return // a late 1xx (net/http would refuse it too)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bindingWriter) Write(p []byte) (int, error) {
	if !w.start(0) {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher; it is a no-op when the underlying writer
// cannot flush.
func (w *bindingWriter) Flush() {
	w.start(0)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker by delegating to the underlying writer
// (an error when it cannot). No cookie is sent after a hijack.
func (w *bindingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.b.hijacked()
		w.started = true // the connection left net/http: no header, no 503
	}
	return conn, rw, err
}

// ReadFrom keeps the underlying writer's sendfile path for static files.
func (w *bindingWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.start(0) {
		return io.Copy(io.Discard, src)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *bindingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides every method but Write, so io.Copy cannot loop back.
type writerOnly struct{ io.Writer }
