package supervisor

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Defaults applied by New to zero fields of a Spec.
const (
	DefaultHost          = "127.0.0.1"
	DefaultStartTimeout  = 60 * time.Second
	DefaultStopTimeout   = 10 * time.Second
	DefaultRestartWindow = 10 * time.Minute
	DefaultMaxLineBytes  = 8192
)

// Spec describes one supervised app. The zero values of the optional fields mean the defaults.
type Spec struct {
	// Name is the app's key in logs and Status, e.g. "counter##1". Required.
	Name string
	// Dir is the working directory (the extracted bundle). Required; made absolute by New.
	Dir string
	// Command is the argv. Command[0] containing a slash is a path, relative to Dir unless absolute;
	// without a slash it is looked up in the child's PATH.
	Command []string
	// Env is added to the minimal environment (PATH, HOME=Dir, LANG=C.UTF-8, TMPDIR=TempDir) and may
	// override those. The caller passes HERD_NODE and HERD_CONTEXT here. PORT is reserved: the
	// supervisor sets it.
	Env map[string]string
	// Host is the IP address the app listens on and is probed at. Default 127.0.0.1.
	Host string
	// HealthPath, when set, is the path (with optional query) that must answer GET with 2xx for the app
	// to be ready. Empty: ready as soon as a TCP connection to the port succeeds.
	HealthPath string
	// TempDir is the app's TMPDIR, created by Start if missing. Default Dir/tmp.
	TempDir string
	// StartTimeout bounds the wait for health after each start. Default 60s.
	StartTimeout time.Duration
	// StopTimeout is how long a stopping app may take after SIGTERM before its group is SIGKILLed.
	// Default 10s.
	StopTimeout time.Duration
	// Backoff is the restart delay policy. Zero fields take DefaultBackoff's values.
	Backoff Backoff
	// MaxRestarts, when > 0, is how many restarts are allowed within RestartWindow; one more crash and
	// the process goes to Failed and stays down. 0 restarts forever (with the backoff capped at Max).
	MaxRestarts int
	// RestartWindow is the sliding window MaxRestarts counts in. Default 10m.
	RestartWindow time.Duration
	// MaxLineBytes bounds one logged output line; longer lines are truncated. Default 8192.
	MaxLineBytes int
	// Logger receives the supervisor's events and the app's output. Default: discard.
	Logger *slog.Logger
	// Clock is the time source of backoff delays and status timestamps. Default: the system clock.
	// (Start and stop timeouts and health polling measure the real process and use real timers.)
	Clock Clock
}

// Backoff is the exponential restart delay: the first restart after a crash waits Initial, each further
// consecutive one Factor times longer, at most Max. After ResetAfter of healthy running the next crash
// starts from Initial again.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Factor     float64
	ResetAfter time.Duration
}

// DefaultBackoff returns {Initial 500ms, Max 30s, Factor 2, ResetAfter 60s}.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Factor: 2, ResetAfter: time.Minute}
}

// Next returns the delay that follows prev; prev == 0 means this is the first restart.
func (b Backoff) Next(prev time.Duration) time.Duration {
	if prev <= 0 {
		return min(b.Initial, b.Max)
	}
	f := float64(prev) * b.Factor
	if f >= float64(b.Max) {
		return b.Max
	}
	return max(time.Duration(f), b.Initial)
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b.Initial == 0 {
		b.Initial = d.Initial
	}
	if b.Max == 0 {
		b.Max = max(d.Max, b.Initial)
	}
	if b.Factor == 0 {
		b.Factor = d.Factor
	}
	if b.ResetAfter == 0 {
		b.ResetAfter = d.ResetAfter
	}
	return b
}

// Clock is the time source for backoff delays and status timestamps. Implementations must be safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SpecError reports an invalid Spec field.
type SpecError struct {
	// Field is the Spec field at fault, e.g. "Command" or "Env[PORT]".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

// Error implements error.
func (e *SpecError) Error() string {
	return fmt.Sprintf("supervisor: invalid spec: %s: %s", e.Field, e.Problem)
}

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// withDefaults returns a copy of s with defaults filled in and its slices and maps copied.
func (s Spec) withDefaults() Spec {
	if s.Host == "" {
		s.Host = DefaultHost
	}
	if s.StartTimeout == 0 {
		s.StartTimeout = DefaultStartTimeout
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	if s.RestartWindow == 0 {
		s.RestartWindow = DefaultRestartWindow
	}
	if s.MaxLineBytes == 0 {
		s.MaxLineBytes = DefaultMaxLineBytes
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Clock == nil {
		s.Clock = systemClock{}
	}
	s.Backoff = s.Backoff.withDefaults()
	s.Command = append([]string(nil), s.Command...)
	env := make(map[string]string, len(s.Env))
	for k, v := range s.Env {
		env[k] = v
	}
	s.Env = env
	if s.TempDir == "" && s.Dir != "" {
		s.TempDir = filepath.Join(s.Dir, "tmp")
	}
	return s
}

// validate checks a Spec that already has its defaults.
func (s *Spec) validate() error {
	switch {
	case strings.TrimSpace(s.Name) == "":
		return specErr("Name", "must not be empty")
	case s.Dir == "":
		return specErr("Dir", "must not be empty")
	case len(s.Command) == 0 || s.Command[0] == "":
		return specErr("Command", "must name an executable")
	}
	for i, a := range s.Command {
		if strings.ContainsRune(a, 0) {
			return specErr(fmt.Sprintf("Command[%d]", i), "contains a NUL byte")
		}
	}
	for k, v := range s.Env {
		field := "Env[" + k + "]"
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return specErr(field, "invalid variable name %q", k)
		case k == "PORT":
			return specErr(field, "PORT is chosen by the supervisor")
		case strings.ContainsRune(v, 0):
			return specErr(field, "value contains a NUL byte")
		}
	}
	if net.ParseIP(s.Host) == nil {
		return specErr("Host", "%q is not an IP address", s.Host)
	}
	if s.HealthPath != "" {
		u, err := url.ParseRequestURI(s.HealthPath)
		if err != nil || !strings.HasPrefix(s.HealthPath, "/") || u.Host != "" {
			return specErr("HealthPath", "%q is not an absolute URL path", s.HealthPath)
		}
	}
	return s.validateNumbers()
}

func (s *Spec) validateNumbers() error {
	b := s.Backoff
	switch {
	case s.StartTimeout < 0:
		return specErr("StartTimeout", "must not be negative (%s)", s.StartTimeout)
	case s.StopTimeout < 0:
		return specErr("StopTimeout", "must not be negative (%s)", s.StopTimeout)
	case b.Initial < 0:
		return specErr("Backoff.Initial", "must not be negative (%s)", b.Initial)
	case b.Max < b.Initial:
		return specErr("Backoff.Max", "(%s) must be at least Backoff.Initial (%s)", b.Max, b.Initial)
	case !(b.Factor >= 1) || b.Factor > 1000:
		return specErr("Backoff.Factor", "must be between 1 and 1000 (%g)", b.Factor)
	case b.ResetAfter < 0:
		return specErr("Backoff.ResetAfter", "must not be negative (%s)", b.ResetAfter)
	case s.MaxRestarts < 0:
		return specErr("MaxRestarts", "must not be negative (%d)", s.MaxRestarts)
	case s.RestartWindow < 0:
		return specErr("RestartWindow", "must not be negative (%s)", s.RestartWindow)
	case s.MaxLineBytes < 16 || s.MaxLineBytes > 1<<20:
		return specErr("MaxLineBytes", "must be between 16 and 1048576 (%d)", s.MaxLineBytes)
	}
	return nil
}
