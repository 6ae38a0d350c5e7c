package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"500ms", 500 * time.Millisecond, "500ms"},
		{"30m", 30 * time.Minute, "30m"},
		{"90s", 90 * time.Second, "1m30s"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"1500ms", 1500 * time.Millisecond, "1s500ms"},
		{" 2s ", 2 * time.Second, "2s"},
		{"0", 0, "0s"},
		{"-3s", -3 * time.Second, "-3s"},
		{"1.5us", 1500 * time.Nanosecond, "1us500ns"},
	}
	for _, tt := range tests {
		var d Duration
		if err := d.UnmarshalText([]byte(tt.in)); err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if d.Duration() != tt.want || d.String() != tt.str {
			t.Errorf("%q = %v (%s), want %v (%s)", tt.in, d.Duration(), d, tt.want, tt.str)
		}
		back, err := time.ParseDuration(d.String())
		if err != nil || back != tt.want {
			t.Errorf("String %q does not parse back: %v, %v", d, back, err)
		}
	}
	for _, bad := range []string{"", "5", "fast", "1x"} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil || !strings.Contains(err.Error(), "invalid duration") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("-9223372036854775808ns")); err != nil || d.String() != "-2562047h47m16s854ms775us808ns" {
		t.Errorf("min duration: %s, %v", d, err)
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		str  string
	}{
		{"65536", 65536, "64KiB"},
		{"64KiB", 64 << 10, "64KiB"},
		{"512 MiB", 512 << 20, "512MiB"},
		{"1GB", 1e9, "1GB"},
		{"1gb", 1e9, "1GB"},
		{"3TiB", 3 << 40, "3TiB"},
		{"1500B", 1500, "1500"},
		{"1001", 1001, "1001"},
		{"0", 0, "0"},
		{"2kb", 2000, "2KB"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got.Bytes() != tt.want || got.String() != tt.str {
			t.Errorf("ParseSize(%q) = %d (%s), %v; want %d (%s)", tt.in, got, got, err, tt.want, tt.str)
		}
		if back, err := ParseSize(got.String()); err != nil || back != got {
			t.Errorf("String %q does not parse back: %d, %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "KiB", "-1", "1.5GiB", "1 K", "99999999999999999999", "9000000TiB", "1GiBs"} {
		if _, err := ParseSize(bad); err == nil || !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("ParseSize(%q) err = %v", bad, err)
		}
	}
}

func TestSizeMarshalYAML(t *testing.T) {
	out, err := yaml.Marshal(map[string]Size{"a": 1001, "b": 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "a: 1001\nb: 64KiB\n" {
		t.Errorf("got %q", got)
	}
	var back map[string]Size
	if err := yaml.Unmarshal(out, &back); err != nil || back["a"] != 1001 || back["b"] != 64<<10 {
		t.Errorf("unmarshal: %v, %v", back, err)
	}
	var d struct{ D Duration }
	if err := yaml.Unmarshal([]byte("d: 2m"), &d); err != nil || d.D.Duration() != 2*time.Minute {
		t.Errorf("duration via yaml.Unmarshal: %v, %v", d.D, err)
	}
}

func TestCIDR(t *testing.T) {
	tests := map[string]string{
		"10.0.0.0/8":  "10.0.0.0/8",
		"10.1.2.3/8":  "10.0.0.0/8",
		"192.168.1.7": "192.168.1.7/32",
		"::1":         "::1/128",
		"fd00::/8":    "fd00::/8",
	}
	for in, want := range tests {
		c, err := ParseCIDR(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseCIDR(%q) = %s, %v; want %s", in, c, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "host", "fe80::1%eth0", "10.0.0/8"} {
		if _, err := ParseCIDR(bad); err == nil {
			t.Errorf("ParseCIDR(%q) accepted", bad)
		}
	}
	c, _ := ParseCIDR("10.0.0.0/8")
	if !c.Contains(netip.MustParseAddr("10.9.8.7")) || c.Contains(netip.MustParseAddr("11.0.0.1")) {
		t.Error("Contains is wrong")
	}
}
