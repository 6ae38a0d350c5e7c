package config

import (
	"log/slog"
	"slices"
)

// RedactedValue replaces secrets in Redacted output.
const RedactedValue = "REDACTED"

// Clone returns a deep copy of c: no slice is shared.
func (c Config) Clone() Config {
	c.Node.TrustedProxies = slices.Clone(c.Node.TrustedProxies)
	c.Node.Allow = slices.Clone(c.Node.Allow)
	c.Node.Deny = slices.Clone(c.Node.Deny)
	c.Cluster.Membership.Seeds = slices.Clone(c.Cluster.Membership.Seeds)
	c.Cluster.Farm.Signing.Keys = slices.Clone(c.Cluster.Farm.Signing.Keys)
	c.Router.Backends = slices.Clone(c.Router.Backends)
	return c
}

// Redacted returns a deep copy of c with cluster.secret, manager.token and
// manager.password replaced by RedactedValue when set (unset ones stay empty,
// so output still shows what is missing).
func (c Config) Redacted() Config {
	c = c.Clone()
	for _, p := range []*string{&c.Cluster.Secret, &c.Manager.Token, &c.Manager.Password} {
		if *p != "" {
			*p = RedactedValue
		}
	}
	return c
}

// String returns the redacted config as YAML, for logs and `herd` output.
func (c Config) String() string {
	b, err := Encode(c.Redacted(), FormatYAML)
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// LogValue makes slog print a short, redacted summary instead of the struct
// (the JSON handler would otherwise print the secrets).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("node", c.Node.Name),
		slog.String("http", c.Node.HTTP),
		slog.String("cluster", c.Cluster.Name),
		slog.String("membership", c.Cluster.Membership.Kind),
		slog.String("replication", c.Cluster.Replication.Mode),
		slog.String("router", c.Router.HTTP),
	)
}
