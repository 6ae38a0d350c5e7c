package config

import (
	"os"
	"path/filepath"
	"testing"
)

func fuzzEnv(name string) (string, bool) {
	switch name {
	case "HERD_SECRET":
		return "0123456789abcdef-fuzz", true
	case "EMPTY":
		return "", true
	case "MARKUP":
		return `"/><x a='b'>: [&]`, true
	}
	return "", false
}

func addSeeds(f *testing.F, ext string, extra ...string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"+ext))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// checkRoundTrip: whatever parses must never panic, and a config that parses
// must survive Encode and parse again to the same text, in both syntaxes.
func checkRoundTrip(t *testing.T, data []byte, format string) {
	c, err := ParseWith(data, format, Options{LookupEnv: fuzzEnv})
	if err != nil {
		return
	}
	want, err := Encode(*c, FormatYAML)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	_ = c.String()
	_ = CheckReload(*c, Default())
	for _, f := range []string{FormatYAML, FormatXML} {
		out, err := Encode(*c, f)
		if err != nil {
			t.Fatalf("encode %s: %v", f, err)
		}
		again, err := ParseWith(out, f, Options{LookupEnv: fuzzEnv})
		if err != nil {
			t.Fatalf("re-parse of encoded %s fails: %v\n%s", f, err, out)
		}
		got, _ := Encode(*again, FormatYAML)
		if string(got) != string(want) {
			t.Fatalf("round trip through %s changed the config:\n%s", f, lineDiff(string(want), string(got)))
		}
	}
}

func FuzzParseYAML(f *testing.F) {
	addSeeds(f, ".yaml",
		"", "node: ~\n", "a: &a [*a]\n", "node:\n  name: ${EMPTY:-x}\n  http: \"${MARKUP}\"\n",
		"cluster:\n  membership:\n    seeds: [a:1, ${MARKUP}]\n", "---\n...\n", "node: {name: [1]}\n",
		"router:\n  backends: !!binary aGVsbG8=\n", "sessions:\n  maxSize: 99999999999999TiB\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, FormatYAML)
	})
}

func FuzzParseXML(f *testing.F) {
	addSeeds(f, ".xml",
		"", "<Server/>", "<Server><Node name=\"${EMPTY:-x}\" http=\"${MARKUP}\"/></Server>",
		"<Server><Cluster><Membership><Seed>a:1</Seed><Seed/></Membership></Cluster></Server>",
		"<!DOCTYPE Server [<!ENTITY e \"x\">]><Server><Node name=\"&e;\"/></Server>",
		"<Server><Node><Deny>::1</Deny><Deny>10.0.0.0/8</Deny></Node></Server><!-- end -->",
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Server/>", "<Server><Node name='&#0;'/></Server>")
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data, FormatXML)
	})
}

// FuzzEscapeEnv: escaping makes any string survive expansion unchanged.
func FuzzEscapeEnv(f *testing.F) {
	for _, s := range []string{"", "${A}", "$${", "$$${x}", "a$", "${${", "}{$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := expandEnv(escapeEnv(s), noEnv)
		if err != nil || got != s {
			t.Fatalf("expand(escape(%q)) = %q, %v", s, got, err)
		}
	})
}
