package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNewValidates(t *testing.T) {
	ok := func() Spec {
		return Spec{Name: "a##1", Dir: "/srv/a", Command: []string{"bin/a"}, Env: map[string]string{"X": "1"}}
	}
	tests := []struct {
		name   string
		modify func(*Spec)
		field  string // "" = valid
	}{
		{"valid", func(*Spec) {}, ""},
		{"ipv6 host", func(s *Spec) { s.Host = "::1" }, ""},
		{"health path with query", func(s *Spec) { s.HealthPath = "/a/healthz?deep=1" }, ""},
		{"no name", func(s *Spec) { s.Name = " " }, "Name"},
		{"no dir", func(s *Spec) { s.Dir = "" }, "Dir"},
		{"no command", func(s *Spec) { s.Command = nil }, "Command"},
		{"empty argv0", func(s *Spec) { s.Command = []string{""} }, "Command"},
		{"NUL in arg", func(s *Spec) { s.Command = []string{"a", "b\x00"} }, "Command[1]"},
		{"PORT in env", func(s *Spec) { s.Env["PORT"] = "1" }, "Env[PORT]"},
		{"bad env name", func(s *Spec) { s.Env["A=B"] = "1" }, "Env[A=B]"},
		{"NUL in env value", func(s *Spec) { s.Env["A"] = "\x00" }, "Env[A]"},
		{"host name", func(s *Spec) { s.Host = "localhost" }, "Host"},
		{"relative health path", func(s *Spec) { s.HealthPath = "healthz" }, "HealthPath"},
		{"health URL", func(s *Spec) { s.HealthPath = "http://x/healthz" }, "HealthPath"},
		{"negative start timeout", func(s *Spec) { s.StartTimeout = -1 }, "StartTimeout"},
		{"negative stop timeout", func(s *Spec) { s.StopTimeout = -1 }, "StopTimeout"},
		{"max below initial", func(s *Spec) { s.Backoff = Backoff{Initial: time.Minute, Max: time.Second} }, "Backoff.Max"},
		{"factor below 1", func(s *Spec) { s.Backoff.Factor = 0.5 }, "Backoff.Factor"},
		{"negative max restarts", func(s *Spec) { s.MaxRestarts = -1 }, "MaxRestarts"},
		{"tiny lines", func(s *Spec) { s.MaxLineBytes = 3 }, "MaxLineBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			tc.modify(&s)
			p, err := New(s)
			if tc.field == "" {
				if err != nil || p == nil {
					t.Fatalf("New = %v", err)
				}
				return
			}
			var se *SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("New = %v, want a SpecError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	env := map[string]string{"A": "1"}
	cmd := []string{"bin/a"}
	p, err := New(Spec{Name: "a", Dir: "rel/dir", Command: cmd, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	s := p.spec
	if !filepath.IsAbs(s.Dir) || s.TempDir != filepath.Join(s.Dir, "tmp") {
		t.Errorf("Dir %q TempDir %q, want absolute and Dir/tmp", s.Dir, s.TempDir)
	}
	if s.Host != DefaultHost || s.StartTimeout != DefaultStartTimeout || s.StopTimeout != DefaultStopTimeout ||
		s.Backoff != DefaultBackoff() || s.MaxLineBytes != DefaultMaxLineBytes {
		t.Errorf("defaults not applied: %+v", s)
	}
	env["A"], cmd[0] = "changed", "changed"
	if s.Env["A"] != "1" || s.Command[0] != "bin/a" {
		t.Error("New kept the caller's map or slice")
	}
	if p.State() != StateStopped || p.PID() != 0 || p.Addr() != "" || p.Restarts() != 0 {
		t.Errorf("new process: %+v", p.Status())
	}
}

func TestBackoffNext(t *testing.T) {
	b := Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Factor: 2}
	var got []time.Duration
	var d time.Duration
	for range 9 {
		d = b.Next(d)
		got = append(got, d)
	}
	want := []time.Duration{500e6, 1e9, 2e9, 4e9, 8e9, 16e9, 30e9, 30e9, 30e9}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	huge := Backoff{Initial: time.Second, Max: time.Duration(1<<63 - 1), Factor: 1000}
	if d := huge.Next(time.Duration(1 << 62)); d != huge.Max {
		t.Errorf("overflowing delay = %s, want Max", d)
	}
	if d := (Backoff{Initial: time.Second, Max: time.Second, Factor: 1}).Next(time.Second); d != time.Second {
		t.Errorf("factor 1 delay = %s", d)
	}
}

func TestStateText(t *testing.T) {
	for s := StateStopped; s <= StateFailed; s++ {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%s: round trip gave %v, %v", s, back, err)
		}
	}
	if State(42).String() != "unknown" || State(-1).String() != "unknown" {
		t.Error("unknown states must print as unknown")
	}
	if _, err := json.Marshal(State(42)); err == nil {
		t.Error("marshalling an unknown state succeeded")
	}
	var s State
	if err := s.UnmarshalText([]byte("sleeping")); err == nil || !strings.Contains(err.Error(), "sleeping") {
		t.Errorf("UnmarshalText(sleeping) = %v", err)
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	if got := r.lines(); len(got) != 0 {
		t.Fatalf("empty ring = %v", got)
	}
	for _, s := range []string{"a", "b"} {
		r.add(s)
	}
	if got := r.lines(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("got %v", got)
	}
	for _, s := range []string{"c", "d", "e"} {
		r.add(s)
	}
	if got := r.lines(); !slices.Equal(got, []string{"c", "d", "e"}) {
		t.Fatalf("got %v", got)
	}
}

func TestScanLines(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     []string
	}{
		{"plain", "a\nbb\n", 16, []string{"a", "bb"}},
		{"no final newline", "a\nbb", 16, []string{"a", "bb"}},
		{"crlf and blanks", "a\r\n\n\r\nb\n", 16, []string{"a", "b"}},
		{"exactly max", strings.Repeat("x", 16) + "\nz\n", 16, []string{strings.Repeat("x", 16), "z"}},
		{"truncated", strings.Repeat("x", 40) + "\nz\n", 16, []string{strings.Repeat("x", 16) + truncMark, "z"}},
		{"truncated at EOF", strings.Repeat("x", 40), 16, []string{strings.Repeat("x", 16) + truncMark}},
		{"invalid utf8", "a\xffb\n", 16, []string{"a\uFFFDb"}},
		{"cut at rune", strings.Repeat("x", 15) + "é\n", 16, []string{strings.Repeat("x", 15) + truncMark}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			if err := scanLines(strings.NewReader(tc.in), tc.max, func(s string) { got = append(got, s) }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzScanLines(f *testing.F) {
	for _, s := range []string{"", "a\nb\n", "x\r\n\r\n", strings.Repeat("y", 100) + "\nz", "\xff\xfe\n", "\n\n\n"} {
		f.Add([]byte(s), 16)
	}
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 16 || max > 4096 {
			return
		}
		var got []string
		if err := scanLines(bytes.NewReader(in), max, func(s string) { got = append(got, s) }); err != nil {
			t.Fatal(err)
		}
		// Reference: split on "\n", drop one "\r", skip empty, cut long lines.
		var want []string
		for _, l := range strings.Split(string(in), "\n") {
			if len(l) > max {
				if c := strings.ToValidUTF8(strings.TrimSuffix(l[:runeCut([]byte(l), max)], "\r"), "\uFFFD"); c != "" {
					want = append(want, c+truncMark)
				}
				continue
			}
			l = strings.TrimSuffix(l, "\r")
			if l != "" {
				want = append(want, strings.ToValidUTF8(l, "\uFFFD"))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("scanLines(%q, %d) = %q, want %q", in, max, got, want)
		}
		for _, l := range got {
			if !utf8.ValidString(l) || strings.Contains(l, "\n") {
				t.Fatalf("bad line %q", l)
			}
		}
	})
}

func FuzzStateText(f *testing.F) {
	for _, s := range []string{"running", "failed", "", "unknown", "RUNNING"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var s State
		if err := s.UnmarshalText([]byte(in)); err != nil {
			return
		}
		b, err := s.MarshalText()
		if err != nil || string(b) != in {
			t.Fatalf("%q decoded to %d which encodes as %q, %v", in, s, b, err)
		}
	})
}

func TestResolveCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"app", 0o755}, {"data", 0o644}} {
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, f.name), nil, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		argv0, path, want, errPart string
	}{
		{"bin/app", "", filepath.Join(bin, "app"), ""},
		{filepath.Join(bin, "app"), "", filepath.Join(bin, "app"), ""},
		{"app", "relative:" + bin, filepath.Join(bin, "app"), ""},
		{"bin/data", "", "", "not executable"},
		{"bin", "", "", "not found"},
		{"bin/", "", "", "is a directory"},
		{"bin/missing", "", "", "no such file"},
		{"data", bin, "", "not found in PATH"},
	}
	for _, tc := range tests {
		got, err := resolveCommand(dir, tc.argv0, tc.path)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("resolve %q: %q, %v; want error with %q", tc.argv0, got, err, tc.errPart)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("resolve %q = %q, %v; want %q", tc.argv0, got, err, tc.want)
		}
	}
}

func BenchmarkScanLines(b *testing.B) {
	var buf bytes.Buffer
	for i := range 10000 {
		buf.WriteString(strings.Repeat("z", i%200))
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		n := 0
		_ = scanLines(bytes.NewReader(data), DefaultMaxLineBytes, func(string) { n++ })
	}
}
