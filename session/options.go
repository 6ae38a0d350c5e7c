package session

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults applied by NewManager to zero Options fields.
const (
	DefaultCookieName    = "JSESSIONID"
	DefaultMaxInactive   = 30 * time.Minute
	DefaultMaxSize       = 64 << 10
	DefaultSweepInterval = 30 * time.Second
)

// Options configure a Manager. Zero fields take the defaults above; see
// DefaultOptions.
type Options struct {
	// Route is this node's name, the suffix of the cookie value
	// (Tomcat's jvmRoute). Empty means the cookie holds only the id.
	Route string
	// CookieName is the session cookie's name (default JSESSIONID).
	CookieName string
	// MaxInactive is the idle time after which a session expires
	// (default 30m). Sessions may override it (Session.SetMaxInactive).
	MaxInactive time.Duration
	// MaxSize bounds a session's encoded attributes in bytes (default
	// 64 KiB); see Session.Size.
	MaxSize int
	// SweepInterval is how often Run looks for expired sessions (default 30s).
	SweepInterval time.Duration
	// Clock returns the current time (default time.Now). Tests inject one.
	Clock func() time.Time
	// Logger receives structured events (default: discarded).
	Logger *slog.Logger
	// TrustedProxies are the peers whose X-Forwarded-Proto: https marks a
	// request as secure, so the cookie gets the Secure attribute.
	TrustedProxies []netip.Prefix
}

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() Options {
	return Options{}.withDefaults()
}

func (o Options) withDefaults() Options {
	if o.CookieName == "" {
		o.CookieName = DefaultCookieName
	}
	if o.MaxInactive == 0 {
		o.MaxInactive = DefaultMaxInactive
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports the first invalid field, naming it.
func (o Options) Validate() error {
	if err := CheckRoute(o.Route); err != nil {
		return fmt.Errorf("session: Options.Route: %w", err)
	}
	if o.CookieName == "" {
		return fmt.Errorf("session: Options.CookieName: empty")
	}
	for i := 0; i < len(o.CookieName); i++ {
		if !isTokenChar(o.CookieName[i]) {
			return fmt.Errorf("session: Options.CookieName %q: character %q not allowed in a cookie name", o.CookieName, o.CookieName[i])
		}
	}
	if o.MaxInactive <= 0 {
		return fmt.Errorf("session: Options.MaxInactive (%s) must be positive", o.MaxInactive)
	}
	if o.MaxSize <= 0 {
		return fmt.Errorf("session: Options.MaxSize (%d) must be positive", o.MaxSize)
	}
	if o.SweepInterval <= 0 {
		return fmt.Errorf("session: Options.SweepInterval (%s) must be positive", o.SweepInterval)
	}
	for i, p := range o.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("session: Options.TrustedProxies[%d]: invalid prefix", i)
		}
	}
	return nil
}

// isTokenChar reports whether c may appear in a cookie name (RFC 6265 token).
func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
