package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func secretConfig() Config {
	c := clustered()
	c.Cluster.Secret = "cluster-secret-value-123"
	c.Manager.Token = "manager-token-value"
	c.Manager.Username = "admin"
	c.Manager.Password = "manager-password-value"
	return c
}

var secretValues = []string{"cluster-secret-value-123", "manager-token-value", "manager-password-value"}

func TestRedaction(t *testing.T) {
	c := secretConfig()
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("start", "config", c)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("start", "config", &c)
	outputs := map[string]string{
		"String":  c.String(),
		"%v":      fmt.Sprintf("%v", c),
		"%v ptr":  fmt.Sprintf("%v", &c),
		"%+v ptr": fmt.Sprintf("%+v", &c),
		"slog":    logBuf.String(),
	}
	for name, out := range outputs {
		for _, s := range secretValues {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks %q", name, s)
			}
		}
	}
	s := c.String()
	if strings.Count(s, RedactedValue) != 3 || !strings.Contains(s, "username: admin") {
		t.Errorf("String:\n%s", s)
	}
	if !strings.Contains(logBuf.String(), `"node":"node1"`) {
		t.Errorf("slog summary missing the node name: %s", logBuf.String())
	}
	if c.Cluster.Secret != secretValues[0] {
		t.Error("Redacted changed the original")
	}
}

func TestRedactedKeepsUnsetEmpty(t *testing.T) {
	r := Default().Redacted()
	if r.Cluster.Secret != "" || r.Manager.Token != "" || r.Manager.Password != "" {
		t.Errorf("unset secrets became %q %q %q", r.Cluster.Secret, r.Manager.Token, r.Manager.Password)
	}
}

func TestCloneSharesNothing(t *testing.T) {
	c := parseFile(t, "testdata/full.yaml")
	d := c.Clone()
	d.Node.Allow[0] = CIDR{}
	d.Node.Deny[0] = CIDR{}
	d.Node.TrustedProxies[0] = CIDR{}
	d.Cluster.Membership.Seeds[0] = "x"
	d.Cluster.Farm.Signing.Keys[0] = "x"
	d.Router.Backends[0] = "x"
	if diff := Diff(*c, *parseFile(t, "testdata/full.yaml")); diff != nil {
		t.Errorf("Clone aliases %v", diff)
	}
}
