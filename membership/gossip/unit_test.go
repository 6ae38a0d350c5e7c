package gossip

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

func rec(name string, inc, rev uint64, partial, leaving bool, apps ...string) wire.Record {
	r := wire.Record{Cluster: "demo", Rev: rev, Partial: partial, Leaving: leaving,
		Member: membership.Member{Name: name, Route: name, Incarnation: inc}}
	for _, a := range apps {
		r.Member.Meta.Apps = append(r.Member.Meta.Apps, membership.App{Name: a})
	}
	return r
}

func types(evs []membership.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type.String())
	}
	return strings.Join(s, ",")
}

func TestTable(t *testing.T) {
	now := time.Unix(1000, 0)
	ip := net.ParseIP("127.0.0.1")
	type op struct {
		kind string // alive, gone, full
		r    wire.Record
		want string
	}
	tests := []struct {
		name string
		ops  []op
		apps int // apps in the final view of "a", -1: absent
	}{
		{"join update", []op{{"alive", rec("a", 1, 1, false, false), "join"},
			{"alive", rec("a", 1, 1, false, false), ""},
			{"alive", rec("a", 1, 2, false, false, "x"), "update"}}, 1},
		{"self ignored", []op{{"alive", rec("me", 1, 1, false, false), ""}}, -1},
		{"restart", []op{{"alive", rec("a", 1, 1, false, false), "join"},
			{"alive", rec("a", 2, 1, false, false), "dead,join"},
			{"alive", rec("a", 1, 5, false, false), ""}}, 0},
		{"leave then gone", []op{{"alive", rec("a", 1, 1, false, false), "join"},
			{"alive", rec("a", 1, 2, false, true), "leave"},
			{"gone", rec("a", 1, 2, false, true), ""}}, -1},
		{"crash", []op{{"alive", rec("a", 1, 1, false, false), "join"},
			{"gone", rec("a", 1, 1, false, false), "dead"},
			{"gone", rec("a", 1, 1, false, false), ""}}, -1},
		{"partial then full", []op{{"alive", rec("a", 1, 1, true, false), "join"},
			{"full", rec("a", 1, 1, false, false, "x", "y"), "update"},
			{"full", rec("a", 1, 1, false, false, "x", "y"), ""}}, 2},
		{"full before join", []op{{"full", rec("a", 1, 1, false, false, "x"), ""},
			{"alive", rec("a", 1, 1, true, false), "join"}}, 1},
		{"newer partial keeps older apps until full", []op{{"alive", rec("a", 1, 1, true, false), "join"},
			{"full", rec("a", 1, 1, false, false, "x"), "update"},
			{"alive", rec("a", 1, 2, true, false), ""},
			{"full", rec("a", 1, 2, false, false, "x", "y", "z"), "update"}}, 3},
		{"full of old incarnation ignored", []op{{"alive", rec("a", 2, 1, true, false), "join"},
			{"full", rec("a", 1, 9, false, false, "x"), ""}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable("me")
			for i, o := range tc.ops {
				var evs []membership.Event
				switch o.kind {
				case "alive":
					evs = tb.alive(o.r, ip, 7946, now)
				case "gone":
					evs = tb.gone(o.r.Member.Name)
				case "full":
					evs = tb.full(o.r, now)
				}
				if got := types(evs); got != o.want {
					t.Fatalf("op %d (%s): events %q, want %q", i, o.kind, got, o.want)
				}
			}
			p := tb.peers["a"]
			switch {
			case tc.apps < 0 && p != nil:
				t.Fatalf("a still present: %+v", p.view)
			case tc.apps >= 0 && (p == nil || len(p.view.Meta.Apps) != tc.apps):
				t.Fatalf("a: %+v, want %d apps", p, tc.apps)
			}
		})
	}
}

func TestTableSuspect(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newTable("me")
	tb.alive(rec("a", 1, 1, false, false), net.ParseIP("127.0.0.1"), 1, now)
	if m := tb.present(now.Add(time.Second), 2*time.Second); m[0].State != membership.StateAlive {
		t.Fatalf("state %v", m[0].State)
	}
	if m := tb.present(now.Add(3*time.Second), 2*time.Second); m[0].State != membership.StateSuspect {
		t.Fatalf("state %v", m[0].State)
	}
	tb.heard("a", now.Add(3*time.Second))
	if m := tb.present(now.Add(3*time.Second), 2*time.Second); m[0].State != membership.StateAlive || !m[0].LastHeard.Equal(now.Add(3*time.Second)) {
		t.Fatalf("after heard: %+v", m[0])
	}
	if got := tb.addrs(); !got["127.0.0.1:1"] || len(got) != 1 {
		t.Fatalf("addrs %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultLocalConfig()
		c.Cluster, c.Secret, c.Local = "demo", testSecret, membership.Member{Name: "n1"}
		c.Seeds = []string{"10.0.0.1:7946", "herd-headless.ns.svc", "[::1]:7946", "::1", "node-2"}
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatal(err)
	}
	lan := DefaultLANConfig()
	lan.Cluster, lan.Secret, lan.Local = "demo", testSecret, membership.Member{Name: "n1"}
	if err := lan.Validate(); err != nil {
		t.Fatalf("LAN defaults: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"bind not ip", func(c *Config) { c.BindAddr = "localhost:7946" }, "BindAddr"},
		{"bind no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7946" }, "AdvertiseAddr"},
		{"seed bad port", func(c *Config) { c.Seeds = []string{"a:99999"} }, "Seeds[0]"},
		{"seed empty", func(c *Config) { c.Seeds = []string{"ok", ""} }, "Seeds[1]"},
		{"seed bad host", func(c *Config) { c.Seeds = []string{"a b:1"} }, "Seeds[0]"},
		{"probe timeout", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }, "ProbeTimeout"},
		{"rejoin too fast", func(c *Config) { c.RejoinInterval = time.Millisecond }, "RejoinInterval"},
		{"suspicion", func(c *Config) { c.SuspicionMult = 0 }, "SuspicionMult"},
		{"tcp timeout", func(c *Config) { c.TCPTimeout = 0 }, "TCPTimeout"},
		{"secret", func(c *Config) { c.Secret = "" }, "Secret"},
		{"cluster", func(c *Config) { c.Cluster = "a b" }, "Cluster"},
		{"local", func(c *Config) { c.Local.Role = 7 }, "Local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			var fe *membership.FieldError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want a FieldError naming %s", err, tc.field)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// TestCompactMetaFitsWorstCase checks that the largest record Validate
// allows still has a compact form within memberlist's meta limit (memberlist
// panics on oversized meta).
func TestCompactMetaFitsWorstCase(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	m := membership.Member{Name: long(membership.MaxNameLen), Route: long(membership.MaxNameLen),
		Role: membership.RoleRouter, HTTPAddr: long(membership.MaxAddrLen), ChannelAddr: long(membership.MaxAddrLen),
		Incarnation: ^uint64(0), Meta: membership.Meta{Version: long(membership.MaxVersionLen), Draining: true}}
	b, err := wire.Encode(wire.Compact(wire.Record{Cluster: long(membership.MaxNameLen), Rev: ^uint64(0), Leaving: true, Member: m}))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > memberlist.MetaMaxSize {
		t.Fatalf("worst-case compact record is %d bytes, limit %d", len(b), memberlist.MetaMaxSize)
	}
}

func TestLogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	w := &logWriter{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, line := range []string{"[DEBUG] memberlist: d", "[WARN] memberlist: w", "[ERR] memberlist: e", "plain"} {
		if _, err := w.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for _, want := range []string{`level=DEBUG msg=gossip.memberlist text=d`, `level=WARN msg=gossip.memberlist text=w`,
		`level=ERROR msg=gossip.memberlist text=e`, `level=INFO msg=gossip.memberlist text=plain`} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q in:\n%s", want, out)
		}
	}
}

func TestDecodeMsg(t *testing.T) {
	full, err := wire.Encode(rec("a", 1, 1, false, false, "x"))
	if err != nil {
		t.Fatal(err)
	}
	partial, _ := wire.Encode(rec("a", 1, 1, true, false))
	if r, err := decodeMsg(encodeMsg(full)); err != nil || r.Member.Name != "a" {
		t.Fatalf("good message: %v", err)
	}
	for name, b := range map[string][]byte{"empty": nil, "bad type": append([]byte{'X'}, full...),
		"partial": encodeMsg(partial), "garbage": {'R', 0xc1}} {
		if _, err := decodeMsg(b); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("%s: got %v", name, err)
		}
	}
}

func FuzzDecodeMsg(f *testing.F) {
	full, _ := wire.Encode(rec("a", 1, 1, false, false, "x"))
	f.Add(encodeMsg(full))
	f.Add([]byte{'R'})
	f.Add([]byte{'R', 0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeMsg(b); err == nil {
			if err := r.Member.Validate(); err != nil {
				t.Fatalf("accepted invalid record: %v", err)
			}
		}
	})
}
