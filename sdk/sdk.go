// Package sdk is what a Go app imports when it runs as a process under a
// herd node. The node owns the session and its cookie; it passes the
// session to the app in a request header and takes the app's changes from a
// response header (see docs/session-protocol.md). Store wraps that protocol
// as a gorilla/sessions Store, so an app written against gorilla switches
// store and nothing else:
//
//	store := sdk.NewStore(sdk.Options{})
//	http.HandleFunc("/counter/inc", func(w http.ResponseWriter, r *http.Request) {
//		s, _ := store.Get(r, "counter")
//		n, _ := s.Values["count"].(int)
//		s.Values["count"] = n + 1
//		if err := s.Save(r, w); err != nil { // before writing the body
//			http.Error(w, err.Error(), http.StatusInternalServerError)
//			return
//		}
//		fmt.Fprintln(w, n+1)
//	})
//	addr, _ := sdk.ListenAddr() // 127.0.0.1:$PORT
//	http.ListenAndServe(addr, nil)
//
// The environment the node gives the process is read by Port, NodeName and
// ContextPath.
package sdk

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/gorilla/sessions"

	"github.com/herdproject/herd/session/wire"
)

// Environment variables the node sets for a process app.
const (
	EnvPort    = "PORT"
	EnvNode    = "HERD_NODE"
	EnvContext = "HERD_CONTEXT"
)

// Port returns $PORT, the port the app must listen on (on 127.0.0.1).
func Port() string { return os.Getenv(EnvPort) }

// NodeName returns $HERD_NODE, the name of the node running the app.
func NodeName() string { return os.Getenv(EnvNode) }

// ContextPath returns $HERD_CONTEXT, the URL path prefix the app serves
// (e.g. "/counter").
func ContextPath() string { return os.Getenv(EnvContext) }

// ListenAddr returns "127.0.0.1:$PORT", or an error naming the problem
// when PORT is unset or not a port number. Apps must listen on loopback
// only: the node trusts whatever reaches the app to have come through it.
func ListenAddr() (string, error) {
	p := Port()
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("sdk: environment %s=%q: want a port number 1-65535", EnvPort, p)
	}
	return "127.0.0.1:" + p, nil
}

// Options configure a Store.
type Options struct {
	// Registry lists the struct types session values may hold (default:
	// built-in types only).
	Registry *wire.Registry
	// Codec bounds the header sizes (default wire.MaxHeaderSize).
	Codec wire.Codec
}

// Store is a gorilla/sessions Store over the herd header protocol.
//
// Get/New read the session from the wire.RequestHeader of the request.
// Save writes the changes into the wire.UpdateHeader of the response, so,
// like gorilla's cookie stores, it must be called before the response
// header is written (before the first Write or WriteHeader). Several Saves
// in one request merge into one header.
//
// The values of the gorilla session called name live in the herd session
// under attribute keys "name|<key>"; keys and values keep their Go types
// (wire typed codec). Options.MaxAge < 0 invalidates the whole herd
// session; other Options fields are ignored (the node owns the cookie).
// Session.ID is the herd session id, empty when the node passed no session.
type Store struct {
	reg   *wire.Registry
	codec wire.Codec
}

var _ sessions.Store = (*Store)(nil)

// NewStore returns a Store.
func NewStore(opts Options) *Store {
	return &Store{reg: opts.Registry, codec: opts.Codec}
}

// renewKey marks a gorilla session for a new id at Save (see Renew).
type renewKey struct{}

// Renew asks the node to give the session a new id when s is saved (a
// defence against session fixation; do it at login).
func Renew(s *sessions.Session) { s.Values[renewKey{}] = true }

// FromRequest decodes the session the node passed with r. ok is false when
// the node passed none (the app runs outside herd, or the path is filtered).
func FromRequest(r *http.Request) (view wire.SessionView, ok bool, err error) {
	return fromRequest(r, wire.Codec{})
}

func fromRequest(r *http.Request, c wire.Codec) (wire.SessionView, bool, error) {
	h := r.Header.Get(wire.RequestHeader)
	if h == "" {
		return wire.SessionView{}, false, nil
	}
	v, err := c.DecodeRequest(h)
	if err != nil {
		return wire.SessionView{}, false, fmt.Errorf("sdk: %w", err)
	}
	return v, true, nil
}

// Get returns the named session, cached for the request by gorilla's
// registry.
func (st *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(st, name)
}

// New returns the named session decoded from the request header, or an
// empty one (IsNew) when there is none. Like every gorilla Store, it returns
// a usable session even with an error.
func (st *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	gs := sessions.NewSession(st, name)
	gs.Options = &sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	gs.IsNew = true
	view, ok, err := fromRequest(r, st.codec)
	if err != nil || !ok {
		return gs, err
	}
	gs.ID, gs.IsNew = view.ID, view.New
	values, err := st.reg.DecodeValues(name, view.Attrs)
	gs.Values = values
	return gs, err
}

// Save records gs's changes in the response's update header. Only values
// whose encoding changed are sent.
func (st *Store) Save(r *http.Request, w http.ResponseWriter, gs *sessions.Session) error {
	u, err := st.pending(w)
	if err != nil {
		return err
	}
	if gs.Options != nil && gs.Options.MaxAge < 0 {
		u = wire.Update{Invalidate: true}
		return st.write(w, u)
	}
	values := gs.Values
	if _, ok := values[renewKey{}]; ok {
		u.Renew = true
		values = make(map[any]any, len(gs.Values))
		for k, v := range gs.Values {
			if _, marker := k.(renewKey); !marker {
				values[k] = v
			}
		}
		delete(gs.Values, renewKey{})
	}
	attrs, err := st.reg.EncodeValues(gs.Name(), values)
	if err != nil {
		return fmt.Errorf("sdk: save %q: %w", gs.Name(), err)
	}
	base, err := st.baseline(r, u)
	if err != nil {
		return err
	}
	prefix := wire.ValuesPrefix(gs.Name())
	for k, v := range attrs {
		if old, ok := base[k]; !ok || !bytes.Equal(old, v) {
			if u.Set == nil {
				u.Set = map[string][]byte{}
			}
			u.Set[k] = v
		}
		u.Delete = remove(u.Delete, k)
	}
	for k := range base {
		if _, keep := attrs[k]; !keep && strings.HasPrefix(k, prefix) {
			delete(u.Set, k)
			if !contains(u.Delete, k) {
				u.Delete = append(u.Delete, k)
			}
		}
	}
	return st.write(w, u)
}

// pending returns the update an earlier Save of this request wrote.
func (st *Store) pending(w http.ResponseWriter) (wire.Update, error) {
	h := w.Header().Get(wire.UpdateHeader)
	if h == "" {
		return wire.Update{}, nil
	}
	u, err := st.codec.DecodeUpdate(h)
	if err != nil {
		return wire.Update{}, fmt.Errorf("sdk: earlier update: %w", err)
	}
	return u, nil
}

// baseline is the session as the node will see it before applying the
// update being built: the request's attributes with the pending update.
func (st *Store) baseline(r *http.Request, pending wire.Update) (map[string][]byte, error) {
	base := map[string][]byte{}
	if !pending.Invalidate {
		view, _, err := fromRequest(r, st.codec)
		if err != nil {
			return nil, err
		}
		for k, v := range view.Attrs {
			base[k] = v
		}
	}
	for _, k := range pending.Delete {
		delete(base, k)
	}
	for k, v := range pending.Set {
		base[k] = v
	}
	return base, nil
}

func (st *Store) write(w http.ResponseWriter, u wire.Update) error {
	if u.IsZero() {
		w.Header().Del(wire.UpdateHeader)
		return nil
	}
	v, err := st.codec.EncodeUpdate(u)
	if err != nil {
		return fmt.Errorf("sdk: save: %w", err)
	}
	w.Header().Set(wire.UpdateHeader, v)
	return nil
}

func remove(list []string, k string) []string {
	out := list[:0]
	for _, x := range list {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}

func contains(list []string, k string) bool {
	for _, x := range list {
		if x == k {
			return true
		}
	}
	return false
}
