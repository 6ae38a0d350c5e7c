package config

import (
	"encoding/xml"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("500ms", "30m",
// "1h30m") in both syntaxes.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d without zero components ("30m", "1m30s", "1s500ms"), in a
// form time.ParseDuration reads back.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u
	}
	units := []struct {
		name string
		size uint64
	}{
		{"h", uint64(time.Hour)}, {"m", uint64(time.Minute)}, {"s", uint64(time.Second)},
		{"ms", uint64(time.Millisecond)}, {"us", uint64(time.Microsecond)}, {"ns", 1},
	}
	for _, unit := range units {
		if n := u / unit.size; n > 0 {
			b.WriteString(strconv.FormatUint(n, 10))
			b.WriteString(unit.name)
			u -= n * unit.size
		}
	}
	return b.String()
}

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(text)))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want a Go duration such as 500ms, 2s or 30m)", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d with String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML parses a YAML scalar holding a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a scalar", n.Line)
	}
	return d.UnmarshalText([]byte(n.Value))
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalXMLAttr parses an XML attribute holding a duration string.
func (d *Duration) UnmarshalXMLAttr(a xml.Attr) error { return d.UnmarshalText([]byte(a.Value)) }

// Size is a byte count written as plain bytes ("65536") or with a unit:
// binary KiB, MiB, GiB, TiB or decimal KB, MB, GB, TB (and B), case-insensitive,
// an optional space before the unit: "64KiB", "512 MiB", "1GB".
type Size int64

// Bytes returns s as a byte count.
func (s Size) Bytes() int64 { return int64(s) }

type sizeUnit struct {
	name string
	size int64
}

// sizeUnits lists the units in the order String tries them.
func sizeUnits() []sizeUnit {
	return []sizeUnit{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
	}
}

// ParseSize parses a size such as "65536", "64KiB" or "1GB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q (want bytes or a size such as 64KiB, 512MiB, 1GB)", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: number out of range", s)
	}
	unit := strings.TrimSpace(t[i:])
	if unit == "" {
		return Size(n), nil
	}
	for _, u := range sizeUnits() {
		if strings.EqualFold(unit, u.name) {
			if n > math.MaxInt64/u.size {
				return 0, fmt.Errorf("invalid size %q: too large", s)
			}
			return Size(n * u.size), nil
		}
	}
	return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s, unit)
}

// String formats s with the largest unit that divides it exactly, binary
// units first ("64KiB", "1GB"), or as plain bytes.
func (s Size) String() string {
	if s <= 0 {
		return strconv.FormatInt(int64(s), 10)
	}
	for _, u := range sizeUnits() {
		if u.size > 1 && int64(s)%u.size == 0 {
			return strconv.FormatInt(int64(s)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalText parses a size with ParseSize.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText formats s with String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalYAML parses a YAML scalar holding a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size must be a scalar", n.Line)
	}
	return s.UnmarshalText([]byte(n.Value))
}

// MarshalYAML writes s as a plain integer when it has no exact unit, else as
// a size string.
func (s Size) MarshalYAML() (any, error) {
	str := s.String()
	if n, err := strconv.ParseInt(str, 10, 64); err == nil {
		return n, nil
	}
	return str, nil
}

// UnmarshalXMLAttr parses an XML attribute holding a size.
func (s *Size) UnmarshalXMLAttr(a xml.Attr) error { return s.UnmarshalText([]byte(a.Value)) }

// CIDR is a network written as "10.0.0.0/8" or a single address ("::1",
// meaning ::1/128). It embeds netip.Prefix, so c.Contains(addr) works.
type CIDR struct {
	netip.Prefix
}

// ParseCIDR parses a network or a single IP address; host bits are cleared.
func ParseCIDR(s string) (CIDR, error) {
	t := strings.TrimSpace(s)
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return CIDR{}, fmt.Errorf("invalid network %q (want a CIDR such as 10.0.0.0/8 or an IP)", s)
		}
		return CIDR{p.Masked()}, nil
	}
	a, err := netip.ParseAddr(t)
	if err != nil || a.Zone() != "" {
		return CIDR{}, fmt.Errorf("invalid network %q (want a CIDR such as 10.0.0.0/8 or an IP)", s)
	}
	return CIDR{netip.PrefixFrom(a, a.BitLen())}, nil
}

// UnmarshalText parses a network with ParseCIDR.
func (c *CIDR) UnmarshalText(text []byte) error {
	v, err := ParseCIDR(string(text))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// MarshalText formats c as "addr/bits".
func (c CIDR) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalYAML parses a YAML scalar holding a network.
func (c *CIDR) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a network must be a scalar", n.Line)
	}
	return c.UnmarshalText([]byte(n.Value))
}

// MarshalYAML writes c as "addr/bits".
func (c CIDR) MarshalYAML() (any, error) { return c.String(), nil }
