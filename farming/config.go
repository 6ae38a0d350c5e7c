package farming

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/membership"
)

// Deployer is what farming deploys to: the node's HTTP container. *server.Server provides these
// operations (DeployFile, Undeploy, Apps); the node wires them with a small adapter.
type Deployer interface {
	// DeployBundle deploys the bundle file at path (its base name is the bundle file name). It must
	// leave a running deployment untouched when the bundle fails, and be a no-op for the same bytes.
	DeployBundle(ctx context.Context, path string) error
	// UndeployBundle undeploys the app with the deployment key ("name" or "name##version").
	UndeployBundle(ctx context.Context, key string) error
	// DeployedApps lists the apps deployed now.
	DeployedApps() []App
}

// App is a deployed app as the Deployer reports it.
type App struct {
	Key      string // deployment key: "name" or "name##version"
	Name     string // app name
	Version  string // "" when unversioned
	Context  string // URL path prefix
	SHA256   string // of the bundle file it was deployed from ("" for in-process apps)
	State    string // "running", "starting", ...
	Sessions int    // live sessions of this app on this member
}

// Signing configures bundle signatures.
type Signing struct {
	// Required refuses bundles without a valid signature from one of Keys.
	Required bool
	// Keys are the accepted ed25519 public keys (see ParsePublicKeys).
	Keys []ed25519.PublicKey
}

// Config configures a Manager. Zero durations take the defaults noted.
type Config struct {
	// Name is the local member name: the channel's and the membership record's name. Required.
	Name string
	// WatchDir is watched for bundles to farm. Empty: this member drops nothing but still receives
	// and deploys what the cluster farms.
	WatchDir string
	// TempDir holds the bundle store, transfers in progress and the persisted ledger. Required.
	TempDir string
	// Signing configures signature checks.
	Signing Signing
	// UndeployOldVersions keeps only the newest version of each app name (see the package doc).
	UndeployOldVersions bool
	// Limits bound bundle validation (default bundle.DefaultLimits()).
	Limits bundle.Limits
	// MaxBundleSize is the largest bundle file accepted, dropped or received (default 1 GiB).
	MaxBundleSize int64
	// Settle is how long a file in WatchDir must stay unchanged before it is taken (default 1s).
	Settle time.Duration
	// SyncInterval is the anti-entropy period: every live member's digest is compared with the local
	// one and differing ledgers are pulled (default 10s).
	SyncInterval time.Duration
	// SyncGrace is how long a starting member waits for peers to appear before it applies its own
	// ledger alone (default 1s).
	SyncGrace time.Duration
	// SyncTimeout bounds the initial ledger pull; past it the member applies what it has (default 10s).
	SyncTimeout time.Duration
	// StallTimeout fails a transfer that made no progress for this long, or that did not start
	// within it (default 10s).
	StallTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts after a failed transfer
	// (defaults 200ms and 10s).
	RetryMin, RetryMax time.Duration
	// FailedRetry is how long a bundle that failed to deploy here waits before it is tried again
	// (default 30s). The running deployment stays meanwhile.
	FailedRetry time.Duration
	// Parallel bounds the concurrent fetches of a member catching up (default 4).
	Parallel int
	// MaxEntries bounds the ledger; beyond it the oldest tombstones are forgotten, and new drops are
	// refused when live entries alone reach it (default 4096).
	MaxEntries int
	// Logger receives the farm's log (nil discards it).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Limits of the farm.
const (
	// DigestKey is the key of the ledger digest in a member's Meta.Extra.
	DigestKey = "farm"
	// DefaultMaxBundleSize is Config.MaxBundleSize's default.
	DefaultMaxBundleSize = 1 << 30
	// DefaultMaxEntries is Config.MaxEntries's default.
	DefaultMaxEntries = 4096
)

func (c *Config) setDefaults() error {
	if !membership.ValidName(c.Name) {
		return fmt.Errorf("farming: config: Name %q must be 1 to %d characters from [A-Za-z0-9._-]", c.Name, membership.MaxNameLen)
	}
	if c.TempDir == "" {
		return errors.New("farming: config: TempDir is empty")
	}
	if c.Limits == (bundle.Limits{}) {
		c.Limits = bundle.DefaultLimits()
	}
	if c.MaxBundleSize <= 0 {
		c.MaxBundleSize = DefaultMaxBundleSize
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Settle, time.Second)
	def(&c.SyncInterval, 10*time.Second)
	def(&c.SyncGrace, time.Second)
	def(&c.SyncTimeout, 10*time.Second)
	def(&c.StallTimeout, 10*time.Second)
	def(&c.RetryMin, 200*time.Millisecond)
	def(&c.RetryMax, 10*time.Second)
	def(&c.FailedRetry, 30*time.Second)
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.Signing.Required && len(c.Signing.Keys) == 0 {
		return errors.New("farming: config: Signing.Required is set but Signing.Keys is empty")
	}
	for i, k := range c.Signing.Keys {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("farming: config: Signing.Keys[%d] is %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// ParsePublicKeys decodes base64 (standard or URL alphabet, padded or not) ed25519 public keys, as
// the config's farm.signing.keys lists them. The error names the index of a bad key.
func ParsePublicKeys(b64 []string) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(b64))
	for i, s := range b64 {
		raw, err := decodeBase64(s)
		if err != nil {
			return nil, fmt.Errorf("farming: signing key %d: not base64: %w", i, err)
		}
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("farming: signing key %d: %d bytes, an ed25519 public key has %d", i, len(raw), ed25519.PublicKeySize)
		}
		out = append(out, ed25519.PublicKey(raw))
	}
	return out, nil
}

// decodeBase64 accepts the standard and URL alphabets, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return nil, err
}
