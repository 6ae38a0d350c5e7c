package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors callers branch on. Start errors are *StartError values wrapping one of these (or the
// context's error); use errors.Is.
var (
	// ErrAlreadyStarted is returned by a second call to Start.
	ErrAlreadyStarted = errors.New("supervisor: already started")
	// ErrStopped is returned by Start after Stop, or when Stop interrupts Start.
	ErrStopped = errors.New("supervisor: stopped")
	// ErrExited means the app exited before it became healthy.
	ErrExited = errors.New("process exited during startup")
	// ErrStartTimeout means the app did not become healthy within StartTimeout.
	ErrStartTimeout = errors.New("process not healthy before the start timeout")
	// ErrUnsupported is returned by Start on systems without process-group and parent-death-signal
	// support (everything but Linux).
	ErrUnsupported = errors.New("supervisor: process supervision needs linux")
)

// StartError is returned by Start when the app could not be brought up.
type StartError struct {
	// Name is the app's Spec.Name.
	Name string
	// Err is the cause: ErrExited, ErrStartTimeout (with the last probe error), ErrStopped, a context
	// error, or a launch error.
	Err error
	// Exit describes how the app's process ended, when it ran at all.
	Exit *ExitInfo
	// Tail holds the app's last output lines ("stdout: ..." / "stderr: ...").
	Tail []string
}

// Error implements error; it includes the exit and the output tail.
func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "supervisor: start %s: %v", e.Name, e.Err)
	if e.Exit != nil {
		fmt.Fprintf(&b, " (%s)", e.Exit)
	}
	if len(e.Tail) > 0 {
		b.WriteString("; last output:")
		for _, l := range e.Tail {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}

// Unwrap returns Err.
func (e *StartError) Unwrap() error { return e.Err }

// State is the lifecycle state of a Process.
type State int

// The states of a Process. A new Process is Stopped.
const (
	// StateStopped: not running (never started, or stopped).
	StateStopped State = iota
	// StateStarting: launched, waiting for health.
	StateStarting
	// StateRunning: healthy and serving.
	StateRunning
	// StateBackoff: crashed, waiting for the restart delay.
	StateBackoff
	// StateStopping: SIGTERM sent, waiting for the app to exit.
	StateStopping
	// StateFailed: never became healthy at Start, or exceeded MaxRestarts; stays down.
	StateFailed
)

var stateNames = [...]string{"stopped", "starting", "running", "backoff", "stopping", "failed"}

// String returns the lowercase state name, or "unknown".
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) {
	if s.String() == "unknown" {
		return nil, fmt.Errorf("supervisor: cannot encode unknown state %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a state name as written by MarshalText.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if string(b) == n {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("supervisor: unknown state %q", truncate(string(b), 32))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ExitInfo describes how one run of the app ended.
type ExitInfo struct {
	// PID of the run; 0 when it never started.
	PID int `json:"pid"`
	// Code is the exit status, or -1 when the app was killed by a signal or never started.
	Code int `json:"code"`
	// Signal names the signal that killed the app ("killed", "terminated"), if any.
	Signal string `json:"signal,omitempty"`
	// Error is set when the app could not be launched or waited for.
	Error string `json:"error,omitempty"`
	// At is when the supervisor saw the exit (Spec.Clock).
	At time.Time `json:"at"`
}

// String describes the exit in a few words.
func (e ExitInfo) String() string {
	switch {
	case e.Error != "":
		return e.Error
	case e.Signal != "":
		return "killed by signal: " + e.Signal
	default:
		return fmt.Sprintf("exit code %d", e.Code)
	}
}

// Status is a snapshot of a Process for the manager API.
type Status struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// PID is the current run's process id; 0 when none runs.
	PID int `json:"pid,omitempty"`
	// Port and Addr are where the current (or last) run listens.
	Port int    `json:"port,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Restarts counts the restarts since Start.
	Restarts int `json:"restarts"`
	// Since is when the Process entered State.
	Since time.Time `json:"since"`
	// Backoff is the current restart delay (in State Backoff; JSON: nanoseconds) and NextRestart when
	// it ends.
	Backoff     time.Duration `json:"backoff,omitzero"`
	NextRestart time.Time     `json:"nextRestart,omitzero"`
	// LastExit describes how the previous run ended.
	LastExit *ExitInfo `json:"lastExit,omitempty"`
	// Output holds the last output lines of the current (or last) run.
	Output []string `json:"output,omitempty"`
}
