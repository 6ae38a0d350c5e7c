package multicast

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
)

func validConfig() Config {
	c := DefaultLocalConfig()
	c.Cluster, c.Secret = "demo", testSecret
	c.Local = membership.Member{Name: "node1"}
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
		reason string
	}{
		{"no interface", func(c *Config) { c.Interface = "" }, "Interface", "is required"},
		{"LAN default needs interface", func(c *Config) {
			i := *c
			*c = DefaultLANConfig()
			c.Cluster, c.Secret, c.Local = i.Cluster, i.Secret, i.Local
		}, "Interface", "is required"},
		{"no cluster", func(c *Config) { c.Cluster = "" }, "Cluster", "must be"},
		{"short secret", func(c *Config) { c.Secret = "short" }, "Secret", "at least 16"},
		{"unicast address", func(c *Config) { c.Address = "127.0.0.1:45564" }, "Address", "multicast"},
		{"bad address", func(c *Config) { c.Address = "228.0.0.4" }, "Address", "ip:port"},
		{"port zero", func(c *Config) { c.Address = "228.0.0.4:0" }, "Address", "port 0"},
		{"ttl zero", func(c *Config) { c.TTL = 0 }, "TTL", "1 to 255"},
		{"drop too short", func(c *Config) { c.DropTime = c.Frequency }, "DropTime", "twice Frequency"},
		{"suspect after drop", func(c *Config) { c.SuspectTime = c.DropTime + time.Second }, "SuspectTime", "between"},
		{"frequency tiny", func(c *Config) { c.Frequency = time.Millisecond }, "Frequency", "at least 10ms"},
		{"skew tiny", func(c *Config) { c.MaxClockSkew = time.Millisecond }, "MaxClockSkew", "at least Frequency"},
		{"no name", func(c *Config) { c.Local.Name = "" }, "Local", "Name is empty"},
		{"bad route", func(c *Config) { c.Local.Route = "a.b" }, "Local", "Route"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			var fe *membership.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not name %s / %q", err, tc.field, tc.reason)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}
