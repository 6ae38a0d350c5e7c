package session

import (
	"fmt"
	"net/http"

	"github.com/gorilla/sessions"

	"github.com/herdproject/herd/session/wire"
)

// Store is a gorilla/sessions Store over the node's sessions, for Go apps
// running in process. It works only inside Manager.Handler (elsewhere Get
// and Save fail with ErrNoBinding): the Handler owns the cookie, so the
// Options' cookie fields (Path, Domain, MaxAge > 0, ...) are ignored.
//
// The values of the gorilla session called name are stored as attributes
// "name|<key>" (see wire.Registry.EncodeValues), so several named sessions
// share the one herd session; each key and value keeps its Go type through
// the typed codec of package wire (register struct types in the Registry).
// Save must run before the response body starts when it may create the
// session (its cookie goes out with the header), as with gorilla's cookie
// stores. Save with Options.MaxAge < 0 invalidates the whole herd session.
type Store struct {
	m   *Manager
	reg *wire.Registry
}

var _ sessions.Store = (*Store)(nil)

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithRegistry sets the Registry of struct types the Store may encode and
// decode (default: built-in types only).
func WithRegistry(r *wire.Registry) StoreOption {
	return func(s *Store) { s.reg = r }
}

// NewStore returns a Store over m's sessions.
func NewStore(m *Manager, opts ...StoreOption) *Store {
	st := &Store{m: m}
	for _, o := range opts {
		o(st)
	}
	return st
}

// Get returns the named session for r, cached for the request by the
// gorilla registry.
func (st *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(st, name)
}

// New returns the named session for r: its values decoded from the bound
// herd session, or empty (IsNew) when there is none. Like every gorilla
// Store, it returns a usable session even with an error.
func (st *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	gs := sessions.NewSession(st, name)
	gs.Options = &sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	gs.IsNew = true
	b, err := st.binding(r)
	if err != nil {
		return gs, err
	}
	s, err := b.Session(false)
	if err != nil || s == nil {
		return gs, err
	}
	gs.ID, gs.IsNew = s.ID(), s.IsNew()
	values, err := st.reg.DecodeValues(name, s.Attrs())
	gs.Values = values
	return gs, err
}

// Save stores gs's values in the bound herd session, creating it if gs has
// values and there is none. Only keys whose encoded value changed are
// marked dirty, so replication ships just those.
func (st *Store) Save(r *http.Request, _ http.ResponseWriter, gs *sessions.Session) error {
	b, err := st.binding(r)
	if err != nil {
		return err
	}
	if gs.Options != nil && gs.Options.MaxAge < 0 {
		b.Invalidate()
		gs.ID = ""
		return nil
	}
	attrs, err := st.reg.EncodeValues(gs.Name(), gs.Values)
	if err != nil {
		return fmt.Errorf("session: save %q: %w", gs.Name(), err)
	}
	s, err := b.Session(len(attrs) > 0)
	if err != nil {
		return fmt.Errorf("session: save %q: %w", gs.Name(), err)
	}
	if s == nil {
		return nil
	}
	if err := s.replacePrefix(wire.ValuesPrefix(gs.Name()), attrs); err != nil {
		return fmt.Errorf("session: save %q: %w", gs.Name(), err)
	}
	gs.ID = s.ID()
	return nil
}

func (st *Store) binding(r *http.Request) (*Binding, error) {
	b := FromRequest(r)
	if b == nil {
		return nil, fmt.Errorf("session: gorilla store: %w", ErrNoBinding)
	}
	if b.m != st.m {
		return nil, fmt.Errorf("session: gorilla store: request bound to another Manager: %w", ErrNoBinding)
	}
	return b, nil
}
