package valve

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// recorder records the status and body size of a response while passing everything through. It keeps
// the optional interfaces the node and apps rely on: Flush for streaming, Hijack for WebSockets, and
// Unwrap for http.ResponseController.
type recorder struct {
	http.ResponseWriter
	info        *Info
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 {
		r.wroteHeader = true
		r.info.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.wroteHeader = true
		r.info.Status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.info.Bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if !r.wroteHeader {
		r.wroteHeader = true
		r.info.Status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("valve: response writer does not support hijacking")
	}
	if !r.wroteHeader {
		r.wroteHeader = true
		r.info.Status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
