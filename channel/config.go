package channel

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"
)

// Limits on configuration values. Frames and chunks are bounded so a peer
// cannot make a member allocate without limit.
const (
	MinSecretLen = 16       // shortest accepted cluster secret, in bytes
	MaxNameLen   = 255      // longest member or cluster name, in bytes
	MaxPoolSize  = 64       // most connections per peer
	MinMaxFrame  = 1 << 10  // smallest accepted Config.MaxFrame
	MaxMaxFrame  = 64 << 20 // largest accepted Config.MaxFrame
)

// Config configures a Channel. Start from DefaultConfig or
// DefaultLocalConfig, set Name, Cluster and Secret, then call Validate
// (New calls it too).
type Config struct {
	// Name is the local member name, sent authenticated to every peer and
	// handed to their handlers as "from".
	Name string
	// Cluster is the cluster name; members of other clusters are refused.
	Cluster string
	// Secret is the cluster secret (at least MinSecretLen bytes) that every
	// member must hold. Use a long random value.
	Secret []byte
	// Bind is the listen address (host:port, port 0 picks one; see
	// Channel.Addr). Empty means dial-only: no listener.
	Bind string
	// PoolSize is the most connections kept to one peer for messages.
	PoolSize int
	// DialTimeout bounds establishing the TCP (and TLS) connection.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the authenticated key exchange, on both ends.
	HandshakeTimeout time.Duration
	// AckTimeout bounds a Request (dial included) when its context has no
	// earlier deadline.
	AckTimeout time.Duration
	// IdleTimeout closes a connection on which nothing was received for
	// this long, and bounds each write (both to within a sixteenth: the
	// deadlines are moved only once they are that stale).
	IdleTimeout time.Duration
	// KeepAlive is how often a dialled connection that has sent nothing
	// sends a ping. It must be shorter than 15/16 of IdleTimeout; 0 disables pings,
	// so idle connections close after IdleTimeout.
	KeepAlive time.Duration
	// ReconnectBackoff is the wait after a failed dial before the next
	// one; it doubles per consecutive failure up to MaxReconnectBackoff.
	// Calls to an unreachable peer within the wait fail fast.
	ReconnectBackoff    time.Duration
	MaxReconnectBackoff time.Duration
	// MaxFrame is the largest message body, in bytes, sent or accepted.
	MaxFrame int
	// StreamChunk is the largest chunk a Stream puts in one frame
	// (at most MaxFrame).
	StreamChunk int
	// StreamWindow is how many unread bytes a stream receiver buffers: the
	// sender's credit (at least StreamChunk).
	StreamWindow int
	// TLS, when set, wraps every connection in TLS (see LoadTLSConfig); the
	// secret handshake still runs inside it. The same config serves both
	// ends: Certificates, RootCAs, ClientCAs, ClientAuth. Without a
	// ServerName the dialled host is verified.
	TLS *tls.Config
	// Logger receives structured events; nil discards them.
	Logger *slog.Logger
	// Now is the clock used for reconnect backoff; nil means time.Now.
	Now func() time.Time

	// kdfIter overrides the PBKDF2 rounds; the package's tests lower it
	// because the race detector makes key stretching ten times slower.
	kdfIter int
}

// DefaultConfig returns settings for a LAN cluster: a pool of 8
// connections, 4 MiB frames, 2 s ack timeout. Name, Cluster and Secret are
// left for the caller.
func DefaultConfig() Config {
	return Config{
		Bind:                "127.0.0.1:4001",
		PoolSize:            8,
		DialTimeout:         3 * time.Second,
		HandshakeTimeout:    5 * time.Second,
		AckTimeout:          2 * time.Second,
		IdleTimeout:         60 * time.Second,
		KeepAlive:           15 * time.Second,
		ReconnectBackoff:    200 * time.Millisecond,
		MaxReconnectBackoff: 10 * time.Second,
		MaxFrame:            4 << 20,
		StreamChunk:         256 << 10,
		StreamWindow:        4 << 20,
	}
}

// DefaultLocalConfig is DefaultConfig shrunk for tests and single-host
// demos: an ephemeral loopback port and short timeouts.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.Bind = "127.0.0.1:0"
	c.DialTimeout = time.Second
	c.HandshakeTimeout = 2 * time.Second
	c.IdleTimeout = 10 * time.Second
	c.KeepAlive = 2 * time.Second
	c.ReconnectBackoff = 20 * time.Millisecond
	c.MaxReconnectBackoff = 500 * time.Millisecond
	return c
}

// ConfigError reports a Config field with an invalid value.
type ConfigError struct {
	Field  string // the Config field at fault
	Reason string // what is wrong with it
}

// Error names the field and the problem.
func (e *ConfigError) Error() string {
	return "channel: config: " + e.Field + " " + e.Reason
}

// Validate checks every field and the rules between them. It returns a
// *ConfigError naming the first field at fault.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := validName(c.Name); err != nil {
		return bad("Name", "%v", err)
	}
	if err := validName(c.Cluster); err != nil {
		return bad("Cluster", "%v", err)
	}
	if len(c.Secret) < MinSecretLen {
		return bad("Secret", "is %d bytes, must be at least %d", len(c.Secret), MinSecretLen)
	}
	if c.PoolSize < 1 || c.PoolSize > MaxPoolSize {
		return bad("PoolSize", "(%d) must be between 1 and %d", c.PoolSize, MaxPoolSize)
	}
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"HandshakeTimeout", c.HandshakeTimeout},
		{"AckTimeout", c.AckTimeout}, {"IdleTimeout", c.IdleTimeout},
		{"ReconnectBackoff", c.ReconnectBackoff}, {"MaxReconnectBackoff", c.MaxReconnectBackoff},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return bad(d.name, "(%s) must be positive", d.d)
		}
	}
	if c.KeepAlive < 0 || (c.KeepAlive > 0 && c.KeepAlive >= c.IdleTimeout-deadlineSlack(c.IdleTimeout)) {
		return bad("KeepAlive", "(%s) must be 0 or shorter than 15/16 of IdleTimeout (%s)", c.KeepAlive, c.IdleTimeout)
	}
	if c.MaxReconnectBackoff < c.ReconnectBackoff {
		return bad("MaxReconnectBackoff", "(%s) must be at least ReconnectBackoff (%s)",
			c.MaxReconnectBackoff, c.ReconnectBackoff)
	}
	if c.MaxFrame < MinMaxFrame || c.MaxFrame > MaxMaxFrame {
		return bad("MaxFrame", "(%d) must be between %d and %d", c.MaxFrame, MinMaxFrame, MaxMaxFrame)
	}
	if c.StreamChunk < 1 || c.StreamChunk > c.MaxFrame {
		return bad("StreamChunk", "(%d) must be between 1 and MaxFrame (%d)", c.StreamChunk, c.MaxFrame)
	}
	if c.StreamWindow < c.StreamChunk || c.StreamWindow > MaxMaxFrame {
		return bad("StreamWindow", "(%d) must be between StreamChunk (%d) and %d",
			c.StreamWindow, c.StreamChunk, MaxMaxFrame)
	}
	return nil
}

// validName accepts 1..MaxNameLen bytes of UTF-8 without control characters.
func validName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("is %d bytes, at most %d allowed", len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}
