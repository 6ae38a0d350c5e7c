package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the .yaml inputs")

// testEnv is the environment the golden inputs are decoded with.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"HERD_SECRET": "0123456789abcdef-golden",
		"HERD_TOKEN":  "token-golden",
		"WORK":        "/var/lib/herd",
		"SEED2":       "", // set but empty: the default applies
	}[name]
	return v, ok
}

// goldenBases lists the testdata pairs: every base has .yaml, .xml and .golden.
func goldenBases(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d yaml inputs in testdata, want at least 5", len(files))
	}
	bases := make([]string, len(files))
	for i, f := range files {
		bases[i] = strings.TrimSuffix(f, ".yaml")
	}
	return bases
}

func parseFile(t *testing.T, path string) *Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseWith(data, filepath.Ext(path), Options{Filename: path, LookupEnv: testEnv})
	if err != nil {
		t.Fatalf("parse %s:\n%v", path, err)
	}
	return c
}

func encode(t *testing.T, c Config, format string) string {
	t.Helper()
	b, err := Encode(c, format)
	if err != nil {
		t.Fatalf("encode %s: %v", format, err)
	}
	return string(b)
}

// TestGolden decodes each YAML/XML pair, applies defaults, validates, and
// compares the normalized config printed as YAML with the .golden file. Both
// syntaxes must print the same text.
func TestGolden(t *testing.T) {
	for _, base := range goldenBases(t) {
		t.Run(filepath.Base(base), func(t *testing.T) {
			fromYAML := parseFile(t, base+".yaml")
			fromXML := parseFile(t, base+".xml")
			got := encode(t, *fromYAML, FormatYAML)
			if gotXML := encode(t, *fromXML, FormatYAML); gotXML != got {
				t.Errorf("yaml and xml disagree:\n%s", lineDiff(got, gotXML))
			}
			if d := Diff(*fromYAML, *fromXML); len(d) > 0 {
				t.Errorf("Diff(yaml, xml) = %v, want none", d)
			}
			golden := base + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the normalized config:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// TestEncodeRoundTrip checks that Encode writes files that decode to the same
// config, in both syntaxes.
func TestEncodeRoundTrip(t *testing.T) {
	for _, base := range goldenBases(t) {
		c := parseFile(t, base+".yaml")
		want := encode(t, *c, FormatYAML)
		for _, format := range []string{FormatYAML, FormatXML} {
			again, err := ParseWith([]byte(encode(t, *c, format)), format, Options{LookupEnv: testEnv})
			if err != nil {
				t.Fatalf("%s via %s: %v", base, format, err)
			}
			if got := encode(t, *again, FormatYAML); got != want {
				t.Errorf("%s via %s changed:\n%s", base, format, lineDiff(want, got))
			}
		}
	}
}

// TestFullSetsEveryKey keeps testdata/full.* honest: both files set every key,
// so the golden pair covers every key in both syntaxes.
func TestFullSetsEveryKey(t *testing.T) {
	for _, path := range []string{"testdata/full.yaml", "testdata/full.xml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Decode(data, filepath.Ext(path), Options{LookupEnv: testEnv})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		walkLeaves(reflect.ValueOf(*c), reflect.Value{}, "", func(p string, _ field, v, _ reflect.Value) {
			n++
			if v.IsZero() || (v.Kind() == reflect.Slice && v.Len() == 0) {
				t.Errorf("%s does not set %s", path, p)
			}
		})
		if n < 60 {
			t.Errorf("walked %d keys, want the whole schema (60+)", n)
		}
	}
}

// lineDiff shows the lines of a and b that differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out.WriteString("- " + x + "\n+ " + y + "\n")
		}
	}
	return out.String()
}
