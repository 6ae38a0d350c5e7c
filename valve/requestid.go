package valve

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"
)

// RequestIDHeader is the header carrying the request id, read from the client (or the router) and set on
// the response.
const RequestIDHeader = "X-Request-Id"

// RequestID installs the request's Info and gives the request an id: the incoming X-Request-Id when it is
// a sane token (at most 128 characters of letters, digits, '-', '_', '.', ':'), a fresh random one
// otherwise. The id is echoed on the response. It must be the first valve of a chain: the others find
// their shared state through it. now is the clock (nil: time.Now).
func RequestID(now func() time.Time) Valve {
	if now == nil {
		now = time.Now
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get(RequestIDHeader)
			if !validRequestID(id) {
				id = NewRequestID()
				r.Header.Set(RequestIDHeader, id)
			}
			info := &Info{ID: id, Start: now()}
			w.Header().Set(RequestIDHeader, id)
			rec := &recorder{ResponseWriter: w, info: info}
			next.ServeHTTP(rec, r.WithContext(WithInfo(r.Context(), info)))
		})
	}
}

// NewRequestID returns a random 128-bit id in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
