package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// clustered is a valid clustered config to break one key at a time.
func clustered() Config {
	c := Default()
	c.Cluster.Membership.Kind = KindMulticast
	c.Cluster.Secret = "0123456789abcdef"
	return c
}

func TestDefaultsValidate(t *testing.T) {
	for name, c := range map[string]Config{"Default": Default(), "DefaultLocal": DefaultLocal(), "clustered": clustered()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
		msg    string
	}{
		{"mode", func(c *Config) { c.Cluster.Replication.Mode = "fast" }, "cluster.replication.mode", `"fast" is not one of async|sync|pooled`},
		{"kind", func(c *Config) { c.Cluster.Membership.Kind = "mdns" }, "cluster.membership.kind", "not one of multicast|gossip|static|none"},
		{"secret missing", func(c *Config) { c.Cluster.Secret = "" }, "cluster.secret", "required when cluster.membership.kind is multicast"},
		{"secret short", func(c *Config) { c.Cluster.Secret = "short" }, "cluster.secret", "at least 16 bytes long, got 5"},
		{"secret newline", func(c *Config) { c.Cluster.Secret = "0123456789abcdef\n" }, "cluster.secret", "control characters"},
		{"bad utf8", func(c *Config) { c.Router.Backends = []string{"a:1", "\xff:1"} }, "router.backends[1]", "not valid UTF-8"},
		{"dropTime", func(c *Config) { c.Cluster.Membership.DropTime = Duration(time.Second) }, "cluster.membership.dropTime", "1s must be greater than 2×frequency (1s)"},
		{"backups", func(c *Config) { c.Cluster.Replication.Manager = ManagerBackup; c.Cluster.Replication.Backups = 0 }, "cluster.replication.backups", "at least 1"},
		{"poolSize", func(c *Config) { c.Cluster.Replication.PoolSize = 0 }, "cluster.replication.poolSize", "at least 1, got 0"},
		{"ackPolicy", func(c *Config) { c.Cluster.Replication.AckPolicy = "ignore" }, "cluster.replication.ackPolicy", "respond|fail"},
		{"queueSize", func(c *Config) { c.Cluster.Replication.QueueSize = -1 }, "cluster.replication.queueSize", "at least 1"},
		{"tls partial", func(c *Config) { c.Cluster.Replication.TLS.Cert = "a.pem" }, "cluster.replication.tls", "set together"},
		{"node http", func(c *Config) { c.Node.HTTP = "8081" }, "node.http", `"8081" is not host:port`},
		{"node http port", func(c *Config) { c.Node.HTTP = "127.0.0.1:99999" }, "node.http", "port"},
		{"node http host", func(c *Config) { c.Node.HTTP = "bad host:80" }, "node.http", "neither an IP address nor a host name"},
		{"router http", func(c *Config) { c.Router.HTTP = "" }, "router.http", "required"},
		{"bind", func(c *Config) { c.Cluster.Replication.Bind = "127.0.0.1" }, "cluster.replication.bind", "not host:port"},
		{"bind clash", func(c *Config) { c.Cluster.Replication.Bind = c.Node.HTTP }, "cluster.replication.bind", "already used by node.http"},
		{"filter", func(c *Config) { c.Cluster.Valve.Filter = "(*" }, "cluster.valve.filter", "missing argument"},
		{"policy", func(c *Config) { c.Router.Policy = "random" }, "router.policy", "round-robin|least-connections"},
		{"multicast addr", func(c *Config) { c.Cluster.Membership.Address = "10.0.0.1:45564" }, "cluster.membership.address", "not a multicast group"},
		{"interface", func(c *Config) { c.Cluster.Membership.Interface = "" }, "cluster.membership.interface", "required"},
		{"ttl", func(c *Config) { c.Cluster.Membership.TTL = 0 }, "cluster.membership.ttl", "1 to 255"},
		{"profile", func(c *Config) { c.Cluster.Membership.Profile = "wan" }, "cluster.membership.profile", "lan|local"},
		{"advertise", func(c *Config) { c.Cluster.Membership.Advertise = "10.0.0.1:80" }, "cluster.membership.advertise", "without a port"},
		{"static seeds", func(c *Config) { c.Cluster.Membership.Kind = KindStatic }, "cluster.membership.seeds", "static membership needs"},
		{"seed", func(c *Config) { c.Cluster.Membership.Seeds = []string{"a:1", ":7946"} }, "cluster.membership.seeds[1]", "host is missing"},
		{"gossip bind", func(c *Config) { c.Cluster.Membership.Kind = KindGossip; c.Cluster.Membership.Bind = "x" }, "cluster.membership.bind", "not host:port"},
		{"node name dot", func(c *Config) { c.Node.Name = "web.1" }, "node.name", "letters, digits"},
		{"log level", func(c *Config) { c.Node.LogLevel = "trace" }, "node.logLevel", "debug|info|warn|error"},
		{"log format", func(c *Config) { c.Node.LogFormat = "xml" }, "node.logFormat", "text|json"},
		{"access log", func(c *Config) { c.Node.AccessLog = "full" }, "node.accessLog", "off|common|combined"},
		{"shutdown", func(c *Config) { c.Node.ShutdownTimeout = -1 }, "node.shutdownTimeout", "must be positive"},
		{"bundle size", func(c *Config) { c.Node.MaxBundleSize = 0 }, "node.maxBundleSize", "must be positive"},
		{"bundle files", func(c *Config) { c.Node.MaxBundleFiles = 0 }, "node.maxBundleFiles", "at least 1"},
		{"farm temp", func(c *Config) { c.Cluster.Farm.WatchDir = "w" }, "cluster.farm.tempDir", "required"},
		{"signing keys", func(c *Config) { c.Cluster.Farm.Signing.Required = true }, "cluster.farm.signing.keys", "required when"},
		{"signing key", func(c *Config) { c.Cluster.Farm.Signing.Keys = []string{"AAAA"} }, "cluster.farm.signing.keys[0]", "ed25519"},
		{"cookie", func(c *Config) { c.Sessions.Cookie = "a b" }, "sessions.cookie", "not a valid cookie name"},
		{"maxSize", func(c *Config) { c.Sessions.MaxSize = -5 }, "sessions.maxSize", "must be positive"},
		{"basic auth", func(c *Config) { c.Manager.Username = "admin" }, "manager.password", "set together"},
		{"health path", func(c *Config) { c.Router.HealthPath = "healthz" }, "router.healthPath", "start with /"},
		{"backend", func(c *Config) { c.Router.Backends = []string{"http://a:1"} }, "router.backends[0]", "not host:port"},
		{"pin header", func(c *Config) { c.Router.PinHeader = "X Pin" }, "router.pinHeader", "header name"},
		{"attempts", func(c *Config) { c.Router.MaxAttempts = 0 }, "router.maxAttempts", "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clustered()
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var found bool
			for _, fe := range FieldErrors(err) {
				if fe.Field == tt.field && strings.Contains(fe.Error(), tt.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem on %s containing %q in:\n%v", tt.field, tt.msg, err)
			}
		})
	}
}

func TestValidateMessageFormat(t *testing.T) {
	c := clustered()
	c.Cluster.Replication.Mode = "fast"
	want := `cluster.replication.mode: "fast" is not one of async|sync|pooled`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestValidateJoinsAll(t *testing.T) {
	c := clustered()
	c.Cluster.Replication.Mode = "fast"
	c.Router.Policy = "random"
	c.Cluster.Secret = ""
	if n := len(FieldErrors(c.Validate())); n != 3 {
		t.Errorf("got %d problems, want 3", n)
	}
}

func TestStandaloneNeedsNoSecret(t *testing.T) {
	c := Default()
	if c.Cluster.Membership.Kind != KindNone || c.Cluster.Secret != "" {
		t.Fatalf("Default is not standalone: kind %q", c.Cluster.Membership.Kind)
	}
	// A multicast address that is not one is not checked when not clustered.
	c.Cluster.Membership.Address = "10.0.0.1:1"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseAnnotatesValidationWithLines(t *testing.T) {
	in := "node:\n  name: a\ncluster:\n  secret: 0123456789abcdef\n  replication:\n    mode: fast\n"
	_, err := ParseWith([]byte(in), "yaml", Options{Filename: "n.yaml"})
	if err == nil || !strings.Contains(err.Error(), `n.yaml:6: cluster.replication.mode: "fast"`) {
		t.Errorf("err = %v", err)
	}
	in = `<Server>
  <Cluster name="x">
    <Membership kind="static"/>
  </Cluster>
</Server>`
	_, err = ParseWith([]byte(in), "xml", Options{Filename: "n.xml"})
	for _, want := range []string{"n.xml:2: cluster.secret: required", "n.xml:3: cluster.membership.seeds: static"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "node-3.internal": true, "localhost": true, "fe80::1%lo": true,
		"": false, "-a": false, "a..b": false, "a b": false, strings.Repeat("a", 64): false,
	} {
		if validHost(h) != want {
			t.Errorf("validHost(%q) = %v", h, !want)
		}
	}
}
