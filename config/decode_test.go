package config

import (
	"errors"
	"strings"
	"testing"
)

func noEnv(string) (string, bool) { return "", false }

// TestDecodeErrors feeds malformed files in both syntaxes and checks the
// error's sentinel, and that its text names the position and the key.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, format, in string
		is               error
		want             []string // substrings of the error text
	}{
		{"yaml unknown key", "yaml", "node:\n  nmae: x\n", ErrUnknownKey,
			[]string{"c.yaml:2: node.nmae: unknown key", `did you mean "name"`}},
		{"yaml unknown section", "yaml", "node: {}\nclustr:\n  name: x\n", ErrUnknownKey,
			[]string{"c.yaml:2: clustr: unknown key", `"cluster"`}},
		{"yaml unknown nested", "yaml", "cluster:\n  membership:\n    kind: gossip\n    port: 1\n", ErrUnknownKey,
			[]string{"c.yaml:4: cluster.membership.port: unknown key"}},
		{"yaml duplicate", "yaml", "node:\n  name: a\n  name: b\n", ErrDuplicateKey,
			[]string{"c.yaml:3: node.name: duplicate key (first at line 2)"}},
		{"yaml bad duration", "yaml", "sessions:\n  maxInactive: 30\n", ErrInvalid,
			[]string{"c.yaml:2: sessions.maxInactive:", `invalid duration "30"`}},
		{"yaml bad int", "yaml", "router:\n  maxAttempts: three\n", ErrInvalid,
			[]string{"c.yaml:2: router.maxAttempts:", `"three" is not an integer`}},
		{"yaml bad bool", "yaml", "cluster:\n  farm:\n    undeployOldVersions: maybe\n", ErrInvalid,
			[]string{"c.yaml:3: cluster.farm.undeployOldVersions:", "not true or false"}},
		{"yaml bad size", "yaml", "sessions:\n  maxSize: 64KB4\n", ErrInvalid,
			[]string{"c.yaml:2: sessions.maxSize:", "unknown unit"}},
		{"yaml bad cidr", "yaml", "node:\n  allow: [10.0.0.0/33]\n", ErrInvalid,
			[]string{"c.yaml:2: node.allow[0]:", "invalid network"}},
		{"yaml list wanted", "yaml", "cluster:\n  membership:\n    seeds: 127.0.0.1:1\n", ErrSyntax,
			[]string{"c.yaml:3: cluster.membership.seeds: syntax error: expected a list"}},
		{"yaml nested list item", "yaml", "router:\n  backends:\n    - [a]\n", ErrSyntax,
			[]string{"c.yaml:3: router.backends[0]:", "single value"}},
		{"yaml scalar section", "yaml", "node: 5\n", ErrSyntax,
			[]string{"c.yaml:1: node: syntax error: node must be a mapping"}},
		{"yaml mapping for scalar", "yaml", "node:\n  name: {a: b}\n", ErrSyntax,
			[]string{"c.yaml:2: node.name:", "expected a single value"}},
		{"yaml root list", "yaml", "- a\n", ErrSyntax, []string{"the document must be a mapping"}},
		{"yaml two documents", "yaml", "node: {}\n---\nnode: {}\n", ErrSyntax,
			[]string{"c.yaml:2:", "more than one YAML document"}},
		{"yaml syntax", "yaml", "node:\n  name: a\n   http: b\n", ErrSyntax, []string{"c.yaml:3: syntax error:"}},
		{"yaml merge key", "yaml", "base: &b {name: a}\n", ErrUnknownKey, []string{"c.yaml:1: base: unknown key"}},
		{"yaml merge", "yaml", "node:\n  <<: {name: a}\n", ErrSyntax, []string{"merge keys"}},
		{"yaml unset env", "yaml", "cluster:\n  secret: ${NOPE_SECRET}\n", ErrUnsetVariable,
			[]string{"c.yaml:2: cluster.secret: environment variable NOPE_SECRET is not set"}},
		{"yaml unterminated env", "yaml", "node:\n  name: ${NAME\n", ErrSyntax,
			[]string{"c.yaml:2: node.name:", "unterminated"}},
		{"yaml bad env name", "yaml", "node:\n  name: ${1X}\n", ErrSyntax,
			[]string{"c.yaml:2: node.name:", `invalid variable reference "${1X}"`}},
		{"xml unknown attribute", "xml", "<Server>\n  <Node name=\"a\"\n        htp=\"b\"/>\n</Server>", ErrUnknownKey,
			[]string{"c.xml:3: node.htp: unknown key: attribute htp on <Node>", `did you mean "http"`}},
		{"xml unknown element", "xml", "<Server>\n<Cluster>\n  <Membrship/>\n</Cluster>\n</Server>", ErrUnknownKey,
			[]string{"c.xml:3: cluster.Membrship: unknown key: element <Membrship> in <Cluster>", `"Membership"`}},
		{"xml lowercase element", "xml", "<Server><node name=\"a\"/></Server>", ErrUnknownKey,
			[]string{`element <node> in <Server> (did you mean "Node"?)`}},
		{"xml section as attribute", "xml", "<Server><Cluster membership=\"x\"/></Server>", ErrUnknownKey,
			[]string{"cluster.membership: unknown key: attribute membership on <Cluster>"}},
		{"xml duplicate section", "xml", "<Server>\n<Node/>\n<Node/>\n</Server>", ErrDuplicateKey,
			[]string{"c.xml:3: node: duplicate key: <Node> repeated (first at line 2)"}},
		{"xml text in section", "xml", "<Server><Node>hello</Node></Server>", ErrSyntax,
			[]string{"node: syntax error: unexpected text in <Node>"}},
		{"xml wrong root", "xml", "<Config/>", ErrSyntax, []string{"root element must be <Server>, found <Config>"}},
		{"xml default namespace", "xml", `<Server xmlns="urn:herd"/>`, ErrSyntax, []string{`namespace "urn:herd"`}},
		{"xml no root", "xml", "<!-- nothing -->\n", ErrSyntax, []string{"no <Server> element"}},
		{"xml trailing element", "xml", "<Server/>\n<Node/>", ErrSyntax, []string{"c.xml:2:", "after </Server>"}},
		{"xml attribute on item", "xml", "<Server><Router><Backend weight=\"2\">a:1</Backend></Router></Server>", ErrUnknownKey,
			[]string{"router.backends[0]: unknown key: attribute weight on <Backend>"}},
		{"xml element in item", "xml", "<Server><Router><Backend><Host/></Backend></Router></Server>", ErrUnknownKey,
			[]string{"router.backends[0]: unknown key: element <Host> inside <Backend>"}},
		{"xml malformed", "xml", "<Server>\n<Node name=\"a\">\n</Server>", ErrSyntax, []string{"c.xml:3: syntax error:"}},
		{"xml unclosed", "xml", "<Server>\n<Node>\n", ErrSyntax, []string{"c.xml:"}},
		{"xml namespaced attribute", "xml", `<Server xmlns:x="urn:x"><Node x:name="a"/></Server>`, ErrUnknownKey,
			[]string{"unknown key: attribute"}},
		{"xml bad duration", "xml", "<Server>\n<Router dialTimeout=\"2\"/>\n</Server>", ErrInvalid,
			[]string{"c.xml:2: router.dialTimeout:", `invalid duration "2"`}},
		{"xml unset env", "xml", "<Server><Manager\n token=\"${NOPE_TOKEN}\"/></Server>", ErrUnsetVariable,
			[]string{"c.xml:2: manager.token:", "NOPE_TOKEN"}},
		{"xml unset env in item", "xml", "<Server><Cluster><Membership>\n<Seed>${NOPE_SEED}</Seed></Membership></Cluster></Server>", ErrUnsetVariable,
			[]string{"c.xml:2: cluster.membership.seeds[0]:", "NOPE_SEED"}},
		{"xml duplicate attribute", "xml", `<Server><Node name="a" name="b"/></Server>`, ErrDuplicateKey,
			[]string{"node.name: duplicate key: attribute name repeated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in), tt.format, Options{Filename: "c." + tt.format, LookupEnv: noEnv})
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeReportsAllProblems(t *testing.T) {
	in := "node:\n  nmae: a\n  htp: b\nrouter:\n  maxAttempts: x\n"
	_, err := Decode([]byte(in), "yaml", Options{LookupEnv: noEnv})
	fes := FieldErrors(err)
	if len(fes) != 3 {
		t.Fatalf("got %d problems, want 3: %v", len(fes), err)
	}
	for i, want := range []struct {
		field string
		line  int
	}{{"node.nmae", 2}, {"node.htp", 3}, {"router.maxAttempts", 5}} {
		if fes[i].Field != want.field || fes[i].Line != want.line {
			t.Errorf("problem %d = %s at line %d, want %s at line %d", i, fes[i].Field, fes[i].Line, want.field, want.line)
		}
	}
}

func TestDecodeCapsProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("node:\n")
	for i := range 500 {
		b.WriteString("  k" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + ": 1\n")
	}
	_, err := Decode([]byte(b.String()), "yaml", Options{})
	if n := len(FieldErrors(err)); n == 0 || n > maxErrors {
		t.Fatalf("got %d problems, want 1..%d", n, maxErrors)
	}
}

func TestDecodeFillsOnlyWhatTheFileSays(t *testing.T) {
	for format, in := range map[string]string{
		"yaml": "node:\n  name: a\ncluster:\n  replication:\n    mode: sync\n",
		"xml":  `<Server><Node name="a"/><Cluster><Replication mode="sync"/></Cluster></Server>`,
	} {
		c, err := Decode([]byte(in), format, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := Config{}
		want.Node.Name = "a"
		want.Cluster.Replication.Mode = ModeSync
		if d := Diff(*c, want); len(d) > 0 {
			t.Errorf("%s: decoded config differs from the file at %v", format, d)
		}
	}
}

func TestDecodeYAMLExtras(t *testing.T) {
	in := `
anchors: &x 1
`
	if _, err := Decode([]byte(in), "yaml", Options{}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("anchor key: err = %v, want unknown key", err)
	}
	in = `
node:
  name: &n web
router:
  backends: [*n]
cluster:
  secret: ~
`
	c, err := Decode([]byte(in), "yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Router.Backends) != 1 || c.Router.Backends[0] != "web" || c.Cluster.Secret != "" {
		t.Errorf("aliases or null: got backends %v secret %q", c.Router.Backends, c.Cluster.Secret)
	}
	if c, err := Decode(nil, "yml", Options{}); err != nil || Diff(*c, Config{}) != nil {
		t.Errorf("empty yaml: %v, %v", c, err)
	}
}

func TestUnsupportedFormat(t *testing.T) {
	for _, f := range []string{"json", "", "toml"} {
		if _, err := Decode([]byte("{}"), f, Options{}); !errors.Is(err, ErrUnsupportedFormat) {
			t.Errorf("format %q: err = %v, want ErrUnsupportedFormat", f, err)
		}
	}
	for path, want := range map[string]string{"a.yaml": "yaml", "b.YML": "yaml", "/etc/herd/server.xml": "xml"} {
		if got, err := FormatOf(path); err != nil || got != want {
			t.Errorf("FormatOf(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := FormatOf("herd.conf"); !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), `".conf"`) {
		t.Errorf("FormatOf(herd.conf) err = %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	data := make([]byte, MaxFileSize+1)
	if _, err := Decode(data, "yaml", Options{}); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v", err)
	}
}
