package config

import (
	"errors"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "Q": `"quoted" <b>&amp;</b> ${A}`}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want string
		err      error
	}{
		{"plain", "plain", nil},
		{"${A}", "alpha", nil},
		{"x-${A}-y", "x-alpha-y", nil},
		{"${A}${A}", "alphaalpha", nil},
		{"${EMPTY}", "", nil},
		{"${EMPTY:-dflt}", "dflt", nil},
		{"${UNSET:-dflt}", "dflt", nil},
		{"${UNSET:-}", "", nil},
		{"${UNSET:-a:-b}", "a:-b", nil},
		{"${A:-dflt}", "alpha", nil},
		{"${Q}", `"quoted" <b>&amp;</b> ${A}`, nil}, // values are not expanded again
		{"$${A}", "${A}", nil},
		{"$$${A}", "$${A}", nil},
		{"$A $ $$ {A}", "$A $ $$ {A}", nil},
		{"${UNSET}", "", ErrUnsetVariable},
		{"${A", "", ErrSyntax},
		{"${}", "", ErrSyntax},
		{"${A-b}", "", ErrSyntax},
		{"${A:b}", "", ErrSyntax},
		{"${9A}", "", ErrSyntax},
	}
	for _, tt := range tests {
		got, err := expandEnv(tt.in, lookup)
		if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
			t.Errorf("expandEnv(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestEscapeEnvRoundTrip(t *testing.T) {
	for _, s := range []string{"", "${A}", "$${", "$$${x}", "a$", "${${", "$", "}{$"} {
		got, err := expandEnv(escapeEnv(s), noEnv)
		if err != nil || got != s {
			t.Errorf("expand(escape(%q)) = %q, %v", s, got, err)
		}
	}
}

// TestEnvCannotBreakSyntax: values from the environment are inserted after
// parsing, so markup or quotes in them stay data.
func TestEnvCannotBreakSyntax(t *testing.T) {
	evil := `x"/><Manager token="pwned"/><Node name="` + "\n" + `a: b`
	lookup := func(string) (string, bool) { return evil, true }
	for format, in := range map[string]string{
		"yaml": "manager:\n  password: ${EVIL}\n  username: u\n",
		"xml":  `<Server><Manager username="u" password="${EVIL}"/></Server>`,
	} {
		c, err := Decode([]byte(in), format, Options{LookupEnv: lookup})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if c.Manager.Password != evil || c.Manager.Token != "" {
			t.Errorf("%s: password %q token %q", format, c.Manager.Password, c.Manager.Token)
		}
	}
}

func TestGossipGoldenValues(t *testing.T) {
	c := parseFile(t, "testdata/gossip.xml")
	if c.Manager.Token != "literal-${NOT_A_VAR}" {
		t.Errorf("token = %q, want the escaped literal", c.Manager.Token)
	}
	if c.Cluster.Membership.Seeds[1] != "127.0.0.4:7946" {
		t.Errorf("seed default from ${SEED2:-...} = %q", c.Cluster.Membership.Seeds[1])
	}
}
