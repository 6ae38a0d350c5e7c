package session

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/herdproject/herd/session/wire"
)

type ctxKey int

const (
	bindingKey ctxKey = iota
	skipKey
)

// Skip returns r marked so that it never touches the session store (the
// replication valve's filter for static paths): under Manager.Handler, its
// Binding finds no session, creates none (ErrSkipped), sets no cookie and
// commits nothing.
func Skip(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), skipKey, true))
}

// Skipped reports whether r was marked with Skip.
func Skipped(r *http.Request) bool {
	v, _ := r.Context().Value(skipKey).(bool)
	return v
}

// FromRequest returns the Binding that Manager.Handler attached to r, or
// nil outside a Handler. Every Binding method is safe on a nil Binding.
func FromRequest(r *http.Request) *Binding {
	b, _ := r.Context().Value(bindingKey).(*Binding)
	return b
}

// Binding ties one request to its session. Its methods are safe for
// concurrent use by the handler's goroutines during the request.
type Binding struct {
	m       *Manager
	app     string
	path    string
	secure  bool
	skipped bool

	mu          sync.Mutex
	sess        *Session
	cookieID    string // id from the request's cookie for sess (or the invalidated one)
	cookieRoute string
	created     bool // sess was created during this request
	tentative   bool // sess was created only to offer it to a process app
	renewed     bool
	invalidated bool
	headersDone bool
	committed   bool        // the pre-header commit ran
	done        atomic.Bool // mirrors headersDone for the writer's fast path
}

// Handler returns next wrapped so that each request is bound to the
// session of app (the deployment key, e.g. "shop##2"):
//
//   - it reads every cookie named Options.CookieName (a browser sends
//     several for nested paths) and binds the first valid, live session
//     whose App is app; that counts as an access. Malformed, forged,
//     unknown, expired or other apps' ids are ignored.
//   - FromRequest(r) gives next the Binding, which creates a session
//     lazily (Binding.Session(true)).
//   - at the first WriteHeader/Write/Flush/ReadFrom it adds Set-Cookie
//     (Path=cookiePath, HttpOnly, SameSite=Lax, Secure on TLS or on
//     X-Forwarded-Proto: https from a trusted proxy) when the session was
//     created or renewed, when the cookie's route is not this node's
//     (failover rebind: the cookie becomes <id>.<this route>), or, to
//     expire the cookie, when the session was invalidated.
//   - it commits the session (see Session.Commit) just before the response
//     header goes out, so that a synchronous replicator (SubscribeSync) has
//     the change acknowledged by peers before the client can see the
//     response; if the replicator fails the request, the client gets 503
//     instead of next's response. Changes made after the header was written
//     are committed when next returns (or panics).
//
// The ResponseWriter given to next keeps http.Flusher, http.Hijacker and
// io.ReaderFrom, and has Unwrap for http.ResponseController.
func (m *Manager) Handler(app, cookiePath string, next http.Handler) http.Handler {
	if cookiePath == "" {
		cookiePath = "/"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := &Binding{m: m, app: app, path: cookiePath, secure: m.secure(r), skipped: Skipped(r)}
		if !b.skipped {
			b.bind(r)
		}
		bw := &bindingWriter{ResponseWriter: w, b: b}
		defer b.commit()
		next.ServeHTTP(bw, r.WithContext(context.WithValue(r.Context(), bindingKey, b)))
		if !bw.started { // nothing written: net/http sends the header after we return
			bw.start(0)
		}
	})
}

// bind finds the request's session for b.app.
func (b *Binding) bind(r *http.Request) {
	for _, c := range r.CookiesNamed(b.m.opts.CookieName) {
		id, route, err := ParseCookieValue(c.Value)
		if err != nil {
			b.m.log.Debug("session.cookie.invalid", slog.String("error", err.Error()))
			continue
		}
		if s, ok := b.m.access(id, b.app); ok {
			b.sess, b.cookieID, b.cookieRoute = s, id, route
			return
		}
		// Not here: after a failover the backup manager may hold it on another member.
		if b.m.fetchMissing(r.Context(), id, route) {
			if s, ok := b.m.access(id, b.app); ok {
				b.sess, b.cookieID, b.cookieRoute = s, id, route
				return
			}
		}
	}
}

// Sessions returns the live sessions (of any app) named by r's session
// cookies, in cookie order, without counting an access. The server uses it
// to keep a session's requests on the app version that created it.
func (m *Manager) Sessions(r *http.Request) []*Session {
	var out []*Session
	for _, c := range r.CookiesNamed(m.opts.CookieName) {
		id, _, err := ParseCookieValue(c.Value)
		if err != nil {
			continue
		}
		if s, ok := m.Get(id); ok && !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []*Session, s *Session) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// secure reports whether the cookie should carry Secure.
func (m *Manager) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if len(m.opts.TrustedProxies) == 0 {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if !strings.EqualFold(strings.TrimSpace(proto), "https") {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range m.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Session returns the request's session. Without one, it returns (nil,
// nil), or with create a new session (whose cookie goes out with the
// response; after the headers are written that fails with
// ErrHeadersWritten). A Skip-marked request gets ErrSkipped; outside a
// Handler, ErrNoBinding.
func (b *Binding) Session(create bool) (*Session, error) {
	if b == nil {
		return nil, ErrNoBinding
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessionLocked(create)
}

func (b *Binding) sessionLocked(create bool) (*Session, error) {
	if b.skipped {
		return nil, ErrSkipped
	}
	if b.sess != nil && b.sess.Valid() {
		return b.sess, nil
	}
	if !create {
		return nil, nil
	}
	if b.headersDone {
		return nil, ErrHeadersWritten
	}
	s, err := b.m.Create(b.app)
	if err != nil {
		return nil, err
	}
	b.sess, b.created, b.tentative = s, true, false
	return s, nil
}

// Renew gives the request's session a new id (fixation defence, e.g. at
// login); the new cookie goes out with the response. It fails with
// ErrNoSession, ErrHeadersWritten, ErrSkipped or ErrNoBinding.
func (b *Binding) Renew() error {
	if b == nil {
		return ErrNoBinding
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.renewLocked()
}

func (b *Binding) renewLocked() error {
	if b.skipped {
		return ErrSkipped
	}
	if b.sess == nil || !b.sess.Valid() {
		return ErrNoSession
	}
	if b.headersDone {
		return ErrHeadersWritten
	}
	if _, err := b.m.ChangeID(b.sess.ID()); err != nil {
		return err
	}
	b.renewed = true
	return nil
}

// Invalidate ends the request's session, if any; the response expires the
// cookie. A later Session(true) starts a fresh session.
func (b *Binding) Invalidate() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.invalidateLocked()
}

func (b *Binding) invalidateLocked() {
	if b.skipped || b.sess == nil {
		return
	}
	_ = b.m.Invalidate(b.sess.ID())
	b.invalidated, b.renewed = true, false
}

// Apply applies a process app's update: Invalidate first, then Delete and
// Set (creating a session when Set is not empty and there is none), then
// Renew (when there is a session).
func (b *Binding) Apply(u wire.Update) error {
	if b == nil {
		return ErrNoBinding
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.skipped {
		return ErrSkipped
	}
	if u.Invalidate {
		b.invalidateLocked()
	}
	if len(u.Set) > 0 || len(u.Delete) > 0 {
		s, err := b.sessionLocked(len(u.Set) > 0)
		if err != nil {
			return fmt.Errorf("session: apply update: %w", err)
		}
		if s != nil {
			if err := s.Update(u.Set, u.Delete); err != nil {
				return fmt.Errorf("session: apply update: %w", err)
			}
		}
	}
	if u.Renew && b.sess != nil && b.sess.Valid() {
		if err := b.renewLocked(); err != nil {
			return fmt.Errorf("session: apply update: %w", err)
		}
	}
	return nil
}

// ProxyRequest prepares the outgoing request header h for a process app: it
// removes every Herd-Session* header (the client's forgeries) and, unless
// the request is Skip-marked, sets wire.RequestHeader to the session. A
// request without a session gets a tentative new one (View().New), which
// the node drops, cookie-less, if the app's answer stores nothing in it.
// It fails with a wire.ErrTooLarge error when the session does not fit
// (the header is then absent).
func (b *Binding) ProxyRequest(h http.Header) error {
	wire.StripHeaders(h)
	if b == nil {
		return ErrNoBinding
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.skipped {
		return nil
	}
	s, err := b.sessionLocked(false)
	if err != nil {
		return err
	}
	if s == nil {
		if s, err = b.sessionLocked(true); err != nil {
			return err
		}
		b.tentative = true
	}
	v, err := wire.EncodeRequest(s.View())
	if err != nil {
		return fmt.Errorf("session: pass session to app %s: %w", b.app, err)
	}
	h.Set(wire.RequestHeader, v)
	return nil
}

// ProxyResponse reads and removes the app's wire.UpdateHeader (and any
// other Herd-Session* header) from the response header h and applies it.
// Call it before the response header is written (ReverseProxy's
// ModifyResponse). A malformed update is an error naming the problem; the
// session is then unchanged.
func (b *Binding) ProxyResponse(h http.Header) error {
	values := h.Values(wire.UpdateHeader)
	wire.StripHeaders(h)
	if len(values) == 0 {
		return nil
	}
	if len(values) > 1 {
		return fmt.Errorf("session: app sent %d %s headers, want at most 1", len(values), wire.UpdateHeader)
	}
	u, err := wire.DecodeUpdate(values[0])
	if err != nil {
		return fmt.Errorf("session: app %s: %w", b.appName(), err)
	}
	return b.Apply(u)
}

func (b *Binding) appName() string {
	if b == nil {
		return ""
	}
	return b.app
}

// writeCookies adds the Set-Cookie the response needs, once.
func (b *Binding) writeCookies(h http.Header) {
	if b.done.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.headersDone || b.skipped {
		b.headersDone = true
		b.done.Store(true)
		return
	}
	b.headersDone = true
	b.done.Store(true)
	s := b.sess
	if s != nil && b.tentative && s.IsNew() && s.Len() == 0 {
		b.m.discard(s) // offered to a process app that stored nothing
		b.sess, b.created, b.tentative = nil, false, false
		s = nil
	}
	route := b.m.opts.Route
	switch {
	case s != nil && s.Valid() && (b.created || b.renewed || b.cookieRoute != route):
		h.Add("Set-Cookie", b.cookie(FormatCookieValue(s.ID(), route), 0).String())
	case b.invalidated && b.cookieID != "":
		h.Add("Set-Cookie", b.cookie("", -1).String())
	}
}

func (b *Binding) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     b.m.opts.CookieName,
		Value:    value,
		Path:     b.path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   b.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// hijacked records that the connection left net/http: no cookie can follow.
func (b *Binding) hijacked() {
	b.mu.Lock()
	b.headersDone = true
	b.done.Store(true)
	b.mu.Unlock()
}

// commit ends the request's unit of work on its session and returns what
// a synchronous replicator said about it.
func (b *Binding) commit() error {
	b.mu.Lock()
	s := b.sess
	if b.skipped || s == nil {
		b.mu.Unlock()
		return nil
	}
	if b.tentative && s.IsNew() && s.Len() == 0 {
		b.sess = nil
		b.mu.Unlock()
		b.m.discard(s) // hijacked before any header: never offered a cookie
		return nil
	}
	b.mu.Unlock()
	_, err := s.commit()
	return err
}

// commitBeforeHeader runs the commit that precedes the response header,
// once, after the cookie decision.
func (b *Binding) commitBeforeHeader() error {
	b.mu.Lock()
	if b.committed {
		b.mu.Unlock()
		return nil
	}
	b.committed = true
	b.mu.Unlock()
	return b.commit()
}
