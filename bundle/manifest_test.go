package bundle

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const counterManifest = `name: counter
version: "3"
context: /counter
kind: process
command: [bin/counter, -v]
health: /counter/healthz
static: public/
env: { GREETING: hi }
platform: linux/amd64
build: [go, build, -o, bin/counter, .]
exclude: ["*.go", tmp/]
startTimeout: 10s
stopTimeout: 2s
`

func TestParseManifestValid(t *testing.T) {
	m, err := ParseManifest([]byte(counterManifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "counter" || m.Version != "3" || m.Context != "/counter" || m.Kind != KindProcess {
		t.Errorf("identity: %+v", m)
	}
	if strings.Join(m.Command, " ") != "bin/counter -v" || m.Health != "/counter/healthz" || m.Static != "public/" {
		t.Errorf("runtime fields: %+v", m)
	}
	if m.Env["GREETING"] != "hi" || m.Platform != "linux/amd64" || len(m.Build) != 5 || len(m.Exclude) != 2 {
		t.Errorf("other fields: %+v", m)
	}
	if m.StartTimeout != 10*time.Second || m.StopTimeout != 2*time.Second {
		t.Errorf("timeouts: %v %v", m.StartTimeout, m.StopTimeout)
	}
}

func TestParseManifestDefaults(t *testing.T) {
	m, err := ParseManifest([]byte("name: hello\nversion: 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindStatic || m.Context != "/hello" || m.Version != "7" {
		t.Errorf("defaults: kind %q context %q version %q", m.Kind, m.Context, m.Version)
	}
	root, err := ParseManifest([]byte("name: root\ncontext: /\n"))
	if err != nil || root.Context != "/" {
		t.Fatalf("ROOT app: %v %+v", err, root)
	}
}

func TestParseManifestInvalid(t *testing.T) {
	proc := "name: p\nkind: process\ncommand: [bin/p]\n"
	tests := []struct {
		name, yaml, field string
		line              int
	}{
		{"empty", "", "(document)", 0},
		{"not a mapping", "- a\n- b\n", "(document)", 1},
		{"two documents", "name: a\n---\nname: b\n", "(document)", 0},
		{"unknown key", "name: a\ncontext: /a\nmaxSessionSize: 3\n", "maxSessionSize", 3},
		{"duplicate key", "name: a\nname: b\n", "name", 2},
		{"missing name", "context: /a\n", "name", 0},
		{"bad name", "name: Shop\n", "name", 1},
		{"bad version", "name: a\nversion: 1/2\n", "version", 2},
		{"context without slash", "name: a\ncontext: a\n", "context", 2},
		{"context trailing slash", "name: a\ncontext: /a/\n", "context", 2},
		{"context dotdot", "name: a\ncontext: /a/../b\n", "context", 2},
		{"context space", "name: a\ncontext: /a b\n", "context", 2},
		{"bad kind", "name: a\nkind: lambda\n", "kind", 2},
		{"command on static", "name: a\ncommand: [x]\n", "command", 2},
		{"health on static", "name: a\nhealth: /a/h\n", "health", 2},
		{"env on static", "name: a\nenv: {A: b}\n", "env", 2},
		{"platform on static", "name: a\nplatform: linux/amd64\n", "platform", 2},
		{"timeout on static", "name: a\nstartTimeout: 1s\n", "startTimeout", 2},
		{"process without command", "name: a\nkind: process\n", "command", 0},
		{"absolute command", "name: a\nkind: process\ncommand: [/usr/bin/x]\n", "command[0]", 3},
		{"escaping command", "name: a\nkind: process\ncommand: [../x/y]\n", "command[0]", 3},
		{"health without slash", proc + "health: healthz\n", "health", 4},
		{"reserved env", proc + "env:\n  PORT: \"1\"\n", "env.PORT", 4},
		{"reserved herd env", proc + "env: {HERD_NODE: x}\n", "env.HERD_NODE", 4},
		{"bad env name", proc + "env: {1A: x}\n", "env.1A", 4},
		{"bad platform", proc + "platform: linux\n", "platform", 4},
		{"platform upper", proc + "platform: Linux/AMD64\n", "platform", 4},
		{"negative timeout", proc + "stopTimeout: -1s\n", "stopTimeout", 4},
		{"int timeout", proc + "stopTimeout: 5\n", "stopTimeout", 4},
		{"bad duration", proc + "startTimeout: soon\n", "startTimeout", 4},
		{"static escapes", "name: a\nstatic: ../x\n", "static", 2},
		{"static absolute", "name: a\nstatic: /x\n", "static", 2},
		{"static backslash", "name: a\nstatic: 'a\\b'\n", "static", 2},
		{"bad exclude", "name: a\nexclude: ['[']\n", "exclude[0]", 2},
		{"empty build", "name: a\nbuild: ['']\n", "build[0]", 2},
		{"command wrong type", "name: a\nkind: process\ncommand: {a: b}\n", "command", 3},
		{"env wrong type", proc + "env: [a]\n", "env", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !errors.Is(err, ErrInvalidManifest) {
				t.Errorf("%v does not match ErrInvalidManifest", err)
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("%v (%T) is not a *ManifestError", err, err)
			}
			if me.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", me.Field, tt.field, err)
			}
			if tt.line != 0 && me.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", me.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name %q", err, tt.field)
			}
		})
	}
}

func TestCheckPlatform(t *testing.T) {
	m := &Manifest{Name: "p", Platform: "linux/arm64"}
	if err := m.CheckPlatform("linux", "arm64"); err != nil {
		t.Errorf("same platform: %v", err)
	}
	err := m.CheckPlatform("linux", "amd64")
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("other platform: %v", err)
	}
	if err := (&Manifest{Name: "s"}).CheckPlatform("plan9", "386"); err != nil {
		t.Errorf("no platform: %v", err)
	}
	m.Platform = "nowhere/none"
	if err := m.CheckPlatform("", ""); !errors.Is(err, ErrPlatform) {
		t.Errorf("runtime default: %v", err)
	}
}
