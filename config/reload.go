package config

import (
	"reflect"
	"slices"
)

// Reloadable is the part of a Config that may change while a node or router
// runs: the keys tagged `reload:"true"` in the Config struct. A reload builds
// the new valve chain or router table from it, swaps it in, then drops the
// old one; everything else needs a restart (see CheckReload).
type Reloadable struct {
	// LogLevel is node.logLevel.
	LogLevel string
	// AccessLog is node.accessLog.
	AccessLog string
	// TrustedProxies is node.trustedProxies.
	TrustedProxies []CIDR
	// Allow is node.allow.
	Allow []CIDR
	// Deny is node.deny.
	Deny []CIDR
	// ReplicationMode is cluster.replication.mode.
	ReplicationMode string
	// AckTimeout is cluster.replication.ackTimeout.
	AckTimeout Duration
	// AckPolicy is cluster.replication.ackPolicy.
	AckPolicy string
	// ValveFilter is cluster.valve.filter.
	ValveFilter string
	// Manager is the manager section (credentials may rotate).
	Manager Manager
	// RouterPolicy is router.policy.
	RouterPolicy string
	// RetryAfterFailure is router.retryAfterFailure.
	RetryAfterFailure Duration
	// MaxAttempts is router.maxAttempts.
	MaxAttempts int
	// DialTimeout is router.dialTimeout.
	DialTimeout Duration
	// ResponseHeaderTimeout is router.responseHeaderTimeout.
	ResponseHeaderTimeout Duration
	// IdleTimeout is router.idleTimeout.
	IdleTimeout Duration
	// HealthPath is router.healthPath.
	HealthPath string
	// HealthInterval is router.healthInterval.
	HealthInterval Duration
	// DrainTimeout is router.drainTimeout.
	DrainTimeout Duration
	// Backends is router.backends.
	Backends []string
}

// Reloadable returns a copy of the reloadable subset of c; it shares no
// slices with c.
func (c Config) Reloadable() Reloadable {
	r := c.Router
	return Reloadable{
		LogLevel:              c.Node.LogLevel,
		AccessLog:             c.Node.AccessLog,
		TrustedProxies:        slices.Clone(c.Node.TrustedProxies),
		Allow:                 slices.Clone(c.Node.Allow),
		Deny:                  slices.Clone(c.Node.Deny),
		ReplicationMode:       c.Cluster.Replication.Mode,
		AckTimeout:            c.Cluster.Replication.AckTimeout,
		AckPolicy:             c.Cluster.Replication.AckPolicy,
		ValveFilter:           c.Cluster.Valve.Filter,
		Manager:               c.Manager,
		RouterPolicy:          r.Policy,
		RetryAfterFailure:     r.RetryAfterFailure,
		MaxAttempts:           r.MaxAttempts,
		DialTimeout:           r.DialTimeout,
		ResponseHeaderTimeout: r.ResponseHeaderTimeout,
		IdleTimeout:           r.IdleTimeout,
		HealthPath:            r.HealthPath,
		HealthInterval:        r.HealthInterval,
		DrainTimeout:          r.DrainTimeout,
		Backends:              slices.Clone(r.Backends),
	}
}

// Diff returns the dotted paths of the keys whose values differ between a and
// b, in struct order ("node.http", "cluster.membership.seeds"). A list is one
// key; nil and empty lists are equal.
func Diff(a, b Config) []string {
	var out []string
	walkLeaves(reflect.ValueOf(a), reflect.ValueOf(b), "", func(path string, _ field, x, y reflect.Value) {
		if !leafEqual(x, y) {
			out = append(out, path)
		}
	})
	return out
}

func leafEqual(x, y reflect.Value) bool {
	if x.Kind() != reflect.Slice {
		return x.Equal(y)
	}
	if x.Len() != y.Len() {
		return false
	}
	for i := range x.Len() {
		if !x.Index(i).Equal(y.Index(i)) {
			return false
		}
	}
	return true
}

// CheckReload reports whether a running process configured with prev can
// take next without a restart: nil, or one *FieldError wrapping
// ErrNotReloadable per changed key that is not reloadable, joined.
func CheckReload(prev, next Config) error {
	reloadable := map[string]bool{}
	walkLeaves(reflect.ValueOf(prev), reflect.Value{}, "", func(path string, f field, _, _ reflect.Value) {
		reloadable[path] = f.reload
	})
	var errs []*FieldError
	for _, path := range Diff(prev, next) {
		if !reloadable[path] {
			errs = append(errs, &FieldError{Field: path, Err: ErrNotReloadable})
		}
	}
	return joinFieldErrors(errs)
}
