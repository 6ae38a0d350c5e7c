package channel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Name, c.Cluster, c.Secret = "node1", "demo", []byte("0123456789abcdef")
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	local := DefaultLocalConfig()
	local.Name, local.Cluster, local.Secret = "n", "c", testSecret
	if err := local.Validate(); err != nil {
		t.Fatalf("local config: %v", err)
	}
	for _, tc := range []struct {
		field  string
		mutate func(*Config)
		reason string
	}{
		{"Name", func(c *Config) { c.Name = "" }, "empty"},
		{"Name", func(c *Config) { c.Name = strings.Repeat("n", 256) }, "at most 255"},
		{"Name", func(c *Config) { c.Name = "a\nb" }, "control character"},
		{"Name", func(c *Config) { c.Name = "\xff" }, "UTF-8"},
		{"Cluster", func(c *Config) { c.Cluster = "" }, "empty"},
		{"Secret", func(c *Config) { c.Secret = []byte("short") }, "at least 16"},
		{"PoolSize", func(c *Config) { c.PoolSize = 0 }, "between 1 and 64"},
		{"PoolSize", func(c *Config) { c.PoolSize = 65 }, "between 1 and 64"},
		{"DialTimeout", func(c *Config) { c.DialTimeout = 0 }, "positive"},
		{"HandshakeTimeout", func(c *Config) { c.HandshakeTimeout = -time.Second }, "positive"},
		{"AckTimeout", func(c *Config) { c.AckTimeout = 0 }, "positive"},
		{"IdleTimeout", func(c *Config) { c.IdleTimeout = 0 }, "positive"},
		{"KeepAlive", func(c *Config) { c.KeepAlive = c.IdleTimeout }, "15/16 of IdleTimeout"},
		{"KeepAlive", func(c *Config) { c.KeepAlive = c.IdleTimeout * 31 / 32 }, "15/16 of IdleTimeout"}, // the idle close may come at 15/16
		{"KeepAlive", func(c *Config) { c.KeepAlive = -1 }, "0 or shorter"},
		{"ReconnectBackoff", func(c *Config) { c.ReconnectBackoff = 0 }, "positive"},
		{"MaxReconnectBackoff", func(c *Config) { c.MaxReconnectBackoff = c.ReconnectBackoff / 2 }, "at least ReconnectBackoff"},
		{"MaxFrame", func(c *Config) { c.MaxFrame = 100 }, "between 1024"},
		{"MaxFrame", func(c *Config) { c.MaxFrame = 1 << 30 }, "between 1024"},
		{"StreamChunk", func(c *Config) { c.StreamChunk = c.MaxFrame + 1 }, "MaxFrame"},
		{"StreamChunk", func(c *Config) { c.StreamChunk = 0 }, "between 1"},
		{"StreamWindow", func(c *Config) { c.StreamWindow = c.StreamChunk - 1 }, "StreamChunk"},
	} {
		t.Run(tc.field+"/"+tc.reason, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want a ConfigError for %s mentioning %q", err, tc.field, tc.reason)
			}
			if _, err := New(c); !errors.As(err, &ce) {
				t.Fatalf("New accepted the config: %v", err)
			}
		})
	}
}
