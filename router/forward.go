package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/herdproject/herd/internal/h1"
)

// forward proxies one request: it prepares the outgoing request (hop-by-hop fields out, forwarding
// and trace fields in), lets the round tripper pick the node and retry, and copies the answer back:
// streamed, flushed at once when its length is unknown or it is an event stream, trailers included.
// A protocol upgrade (101) turns the request into a two-way byte pipe between client and node.
//
// It does what httputil.ReverseProxy did here, with less per request: the client's request is
// consumed by this one proxy, so it is edited in place instead of cloned, and the node's header
// values go to the client's response without being copied.
func (r *Router) forward(w http.ResponseWriter, in *http.Request, st *reqState) {
	out := in // the client's request is this proxy's alone: it is edited in place
	if in.Close {
		// The client closes after this request, the node's connection stays open. The server
		// may still read in.Close, so that one request is copied.
		c := *in
		c.Close = false
		out = &c
	}
	u := out.URL
	if in.ContentLength == 0 {
		out.Body = nil // nothing to send, nothing to replay
	}
	h := out.Header
	upType := upgradeType(h)
	if !printable(upType) {
		r.fail(w, st, &ProxyError{Status: http.StatusBadRequest, Err: fmt.Errorf("client asked to switch to an invalid protocol %q", upType)})
		return
	}
	if upType != "" && out.Body != nil {
		// A protocol switch with a request body would leave the body's reader and the byte pipe
		// both reading the client's connection: the request goes on as a plain one (a server may
		// always decline an upgrade).
		upType = ""
	}
	keepTrailers := hasToken(h["Te"], "trailers")
	prior := h["X-Forwarded-For"]
	removeHopByHop(h)
	if keepTrailers {
		h["Te"] = []string{"trailers"}
	}
	if upType != "" {
		h["Connection"], h["Upgrade"] = []string{"Upgrade"}, []string{upType}
	}
	delete(h, "Forwarded")
	if strings.Contains(u.RawQuery, ";") { // a node must not read the query differently than the router
		q, _ := url.ParseQuery(u.RawQuery)
		u.RawQuery = q.Encode()
	}
	r.rewrite(in, out, st, prior)
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // no client's agent: the node sees none, not the router's
	}

	st.w = w
	res, err := roundTripper{r}.roundTrip(st, out)
	if err != nil {
		r.fail(w, st, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		r.modifyResponse(st, res)
		r.upgrade(w, out, res, st, upType)
		return
	}
	removeHopByHop(res.Header)
	r.modifyResponse(st, res)
	dst := w.Header()
	for k, vv := range res.Header {
		dst[k] = vv
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	if err := r.copyBody(w, res); err != nil {
		res.Body.Close()
		// The head is gone: the only way to tell the client the body is incomplete is to break
		// the response off (the server closes the connection without a clean end).
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() // fills res.Trailer
	if len(res.Trailer) == 0 {
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	for k, vv := range res.Trailer {
		if announced == 0 || len(res.Trailer) != announced {
			k = http.TrailerPrefix + k
		}
		dst[k] = vv
	}
}

// copyBody streams the node's body to the client through a pooled buffer.
func (r *Router) copyBody(w http.ResponseWriter, res *http.Response) error {
	var flusher http.Flusher
	if res.ContentLength == -1 || eventStream(res.Header["Content-Type"]) {
		flusher, _ = w.(http.Flusher)
	}
	bp := h1.CopyBuffer()
	defer h1.ReleaseCopyBuffer(bp)
	buf := *bp
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			r.log.Debug("node's body broke off", "event", "router.body_error", "err", rerr)
			return rerr
		}
	}
}

// upgrade answers a 101 from the node: the client's connection is taken over and bytes are copied
// both ways until either side ends.
func (r *Router) upgrade(w http.ResponseWriter, out *http.Request, res *http.Response, st *reqState, reqType string) {
	resType := upgradeType(res.Header)
	back, ok := res.Body.(io.ReadWriteCloser)
	switch {
	case reqType == "":
		res.Body.Close()
		r.fail(w, st, errors.New("node switched protocols when the request asked for no switch"))
		return
	case !printable(resType) || !strings.EqualFold(reqType, resType):
		res.Body.Close()
		r.fail(w, st, fmt.Errorf("node switched to protocol %q when %q was asked for", resType, reqType))
		return
	case !ok:
		res.Body.Close()
		r.fail(w, st, errors.New("node's 101 answer has no connection to write to"))
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		r.fail(w, st, fmt.Errorf("protocol switch: %w", err))
		return
	}
	defer conn.Close()
	defer back.Close()
	stop := context.AfterFunc(out.Context(), func() { back.Close(); conn.Close() }) // drain or shutdown
	defer stop()
	res.Body = nil // res.Write sends the head only
	if err := res.Write(brw); err != nil || brw.Flush() != nil {
		return
	}
	// Both copiers are this handler's: it waits for both (closing the connections ends the second).
	errc := make(chan error, 2)
	go func() { errc <- pipe(back, brw.Reader) }() // bytes the client sent early are in brw first
	go func() { errc <- pipe(conn, back) }()
	if <-errc == nil {
		<-errc // one direction ended with a half-close: the other may still carry the answer
		return
	}
	back.Close()
	conn.Close()
	<-errc
}

// pipe copies src to dst, then half-closes dst when it can; nil means the half-close was passed on
// (the other direction may go on), an error that this pipe, and so the upgrade, is over.
func pipe(dst io.Writer, src io.Reader) error {
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return io.EOF
}

// hopHeaders are the fields that concern one connection only (RFC 9110 7.6.1), besides those the
// Connection field names.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// upgradeType is the protocol a request or response switches to ("" when none).
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	if v := h["Upgrade"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// hasToken reports whether a comma-separated field has the token (case-insensitive).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// eventStream reports whether a Content-Type is text/event-stream (server-sent events).
func eventStream(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	media, _, _ := strings.Cut(ct[0], ";")
	return strings.EqualFold(strings.TrimSpace(media), "text/event-stream")
}
