package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	t.Setenv("HERD_TEST_SECRET", "loaded-secret-0123456789")
	for name, content := range map[string]string{
		"herd.yaml": "cluster:\n  secret: ${HERD_TEST_SECRET}\n",
		"herd.yml":  "cluster:\n  secret: ${HERD_TEST_SECRET}\n",
		"herd.xml":  `<Server><Cluster secret="${HERD_TEST_SECRET}"/></Server>`,
	} {
		c, err := Load(writeFile(t, name, content))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Cluster.Secret != "loaded-secret-0123456789" || c.Cluster.Membership.Kind != KindMulticast {
			t.Errorf("%s: secret %q kind %q", name, c.Cluster.Secret, c.Cluster.Membership.Kind)
		}
		host, _ := os.Hostname()
		want := routeFromHostname(host)
		if want == "" {
			want = DefaultNodeName
		}
		if c.Node.Name != want {
			t.Errorf("%s: node.name = %q, want %q from the host name", name, c.Node.Name, want)
		}
	}
}

func TestLoadKeepsExplicitName(t *testing.T) {
	c, err := Load(writeFile(t, "n.yaml", "node:\n  name: explicit\n"))
	if err != nil || c.Node.Name != "explicit" {
		t.Fatalf("%v, %v", c, err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(writeFile(t, "herd.json", "{}")); !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), "herd.json") {
		t.Errorf("json: %v", err)
	}
	p := writeFile(t, "bad.yaml", "node:\n  name: a\n  bogus: 1\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p+":3: node.bogus: unknown key") {
		t.Errorf("unknown key: %v", err)
	}
	p = writeFile(t, "unset.xml", "<Server>\n<Cluster secret=\"${HERD_SURELY_UNSET_VAR}\"/>\n</Server>")
	if _, err := Load(p); !errors.Is(err, ErrUnsetVariable) || !strings.Contains(err.Error(), p+":2: cluster.secret:") ||
		!strings.Contains(err.Error(), "HERD_SURELY_UNSET_VAR") {
		t.Errorf("unset variable: %v", err)
	}
	p = writeFile(t, "invalid.yaml", "router:\n  policy: random\n")
	if _, err := Load(p); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), p+":2: router.policy:") {
		t.Errorf("invalid: %v", err)
	}
	p = writeFile(t, "big.yaml", "# "+strings.Repeat("x", MaxFileSize))
	if _, err := Load(p); !errors.Is(err, ErrSyntax) {
		t.Errorf("big: %v", err)
	}
}

func TestParseUsesProcessEnv(t *testing.T) {
	t.Setenv("HERD_TEST_NODE", "from-env")
	c, err := Parse([]byte("node:\n  name: ${HERD_TEST_NODE}\n"), "yaml")
	if err != nil || c.Node.Name != "from-env" {
		t.Fatalf("%v, %v", c, err)
	}
	if _, err := Parse([]byte("node:\n  name: ${HERD_TEST_SURELY_UNSET}\n"), "yaml"); !errors.Is(err, ErrUnsetVariable) {
		t.Errorf("unset: %v", err)
	}
}
