package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDefaultValues(t *testing.T) {
	c := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"node.name", c.Node.Name, "node1"},
		{"node.http", c.Node.HTTP, "127.0.0.1:8081"},
		{"router.http", c.Router.HTTP, "127.0.0.1:8080"},
		{"kind", c.Cluster.Membership.Kind, KindNone},
		{"address", c.Cluster.Membership.Address, "228.0.0.4:45564"},
		{"interface", c.Cluster.Membership.Interface, "lo"},
		{"dropTime", c.Cluster.Membership.DropTime.Duration(), 3 * time.Second},
		{"replication.bind", c.Cluster.Replication.Bind, "127.0.0.1:4001"},
		{"manager", c.Cluster.Replication.Manager, ManagerDelta},
		{"mode", c.Cluster.Replication.Mode, ModePooled},
		{"poolSize", c.Cluster.Replication.PoolSize, 8},
		{"ackTimeout", c.Cluster.Replication.AckTimeout.Duration(), 2 * time.Second},
		{"filter", c.Cluster.Valve.Filter, `.*\.(gif|js|jpe?g|png|css|ico|txt)$`},
		{"cookie", c.Sessions.Cookie, "JSESSIONID"},
		{"router.cookie", c.Router.Cookie, "JSESSIONID"},
		{"maxInactive", c.Sessions.MaxInactive.Duration(), 30 * time.Minute},
		{"maxSize", c.Sessions.MaxSize.Bytes(), int64(64 << 10)},
		{"policy", c.Router.Policy, PolicyRoundRobin},
		{"retryAfterFailure", c.Router.RetryAfterFailure.Duration(), 30 * time.Second},
		{"deployDir", c.Node.DeployDir, "./webapps"},
		{"workDir", c.Node.WorkDir, "./work"},
		{"farm", c.Cluster.Farm.WatchDir + c.Cluster.Farm.TempDir, ""},
		{"maxBundleSize", c.Node.MaxBundleSize.Bytes(), int64(512 << 20)},
		{"trustedProxies", len(c.Node.TrustedProxies), 2},
		{"pinHeader", c.Router.PinHeader, "X-Herd-Node"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	l := DefaultLocal()
	if l.Cluster.Membership.Frequency.Duration() != 100*time.Millisecond || l.Cluster.Membership.Kind != KindNone {
		t.Errorf("DefaultLocal: frequency %s kind %s", l.Cluster.Membership.Frequency, l.Cluster.Membership.Kind)
	}
}

func TestApplyDefaultsIdempotent(t *testing.T) {
	for _, c := range []Config{Default(), DefaultLocal(), clustered()} {
		again := c.Clone()
		again.ApplyDefaults()
		if d := Diff(c, again); len(d) > 0 {
			t.Errorf("second ApplyDefaults changed %v", d)
		}
	}
}

func TestApplyDefaultsDerived(t *testing.T) {
	var c Config
	c.Cluster.Secret = "x"
	c.Cluster.Membership.Frequency = Duration(time.Second)
	c.Cluster.Membership.Kind = KindGossip
	c.Cluster.Membership.Bind = "0.0.0.0:7946"
	c.Sessions.Cookie = "SID"
	c.Node.WorkDir = "/w"
	c.Cluster.Farm.WatchDir = "/in"
	c.ApplyDefaults()
	if got := c.Cluster.Membership.DropTime.Duration(); got != 6*time.Second {
		t.Errorf("dropTime = %s, want 6×frequency", got)
	}
	if c.Cluster.Membership.Advertise != "" {
		t.Errorf("advertise = %q for a wildcard bind, want empty", c.Cluster.Membership.Advertise)
	}
	if c.Router.Cookie != "SID" {
		t.Errorf("router.cookie = %q, want sessions.cookie", c.Router.Cookie)
	}
	if c.Cluster.Farm.TempDir != "/w/farm" {
		t.Errorf("farm.tempDir = %q", c.Cluster.Farm.TempDir)
	}
	var m Config
	m.Cluster.Name = "demo"
	m.ApplyDefaults()
	if m.Cluster.Membership.Kind != KindMulticast || m.Cluster.Membership.Advertise != "127.0.0.1" {
		t.Errorf("cluster section present: kind %q advertise %q", m.Cluster.Membership.Kind, m.Cluster.Membership.Advertise)
	}
}

func TestRouteFromHostname(t *testing.T) {
	for in, want := range map[string]string{
		"web-01.example.com": "web-01",
		"WEB_02":             "web_02",
		"h@st!":              "h-st",
		"":                   "",
		"...":                "",
		"-x-":                "x",
	} {
		if got := routeFromHostname(in); got != want {
			t.Errorf("routeFromHostname(%q) = %q, want %q", in, got, want)
		}
	}
	long := routeFromHostname(string(make([]byte, 0)) + "a234567890123456789012345678901234567890123456789012345678901234567890")
	if len(long) != 63 || !validRoute(long) {
		t.Errorf("long name = %q", long)
	}
}
