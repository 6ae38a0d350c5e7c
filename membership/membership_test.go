package membership

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestStringsNeverPanic(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{RoleNode.String(), "node"}, {RoleRouter.String(), "router"}, {Role(-1).String(), "unknown"},
		{StateAlive.String(), "alive"}, {StateSuspect.String(), "suspect"}, {StateLeaving.String(), "leaving"},
		{StateDead.String(), "dead"}, {State(0).String(), "unknown"}, {State(99).String(), "unknown"},
		{EventJoin.String(), "join"}, {EventUpdate.String(), "update"}, {EventLeave.String(), "leave"},
		{EventDead.String(), "dead"}, {EventType(0).String(), "unknown"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestMemberJSON(t *testing.T) {
	m := Member{Name: "node1", Route: "node1", Role: RoleRouter, State: StateSuspect, HTTPAddr: "127.0.0.1:8081",
		Meta: Meta{Apps: []App{{Name: "counter", Version: "3", Context: "/counter"}}}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"role":"router"`, `"state":"suspect"`, `"http":"127.0.0.1:8081"`,
		`"apps":[{"name":"counter","version":"3","context":"/counter"}]`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var r Role
	if err := r.UnmarshalText([]byte("router")); err != nil || r != RoleRouter {
		t.Fatalf("UnmarshalText: %v %v", r, err)
	}
	if err := r.UnmarshalText([]byte("boss")); err == nil {
		t.Fatal("bad role accepted")
	}
}

func TestCloneIsDeep(t *testing.T) {
	m := Member{Meta: Meta{Apps: []App{{Name: "a"}}, Extra: map[string]string{"k": "v"}}}
	c := m.Clone()
	c.Meta.Apps[0].Name = "changed"
	c.Meta.Extra["k"] = "changed"
	if m.Meta.Apps[0].Name != "a" || m.Meta.Extra["k"] != "v" {
		t.Fatal("Clone shares memory")
	}
	if !SameRecord(m, m.Clone()) {
		t.Fatal("clone differs")
	}
	c = m.Clone()
	c.State, c.LastHeard = StateDead, time.Now()
	if !SameRecord(m, c) {
		t.Fatal("SameRecord looked at State or LastHeard")
	}
	c.Meta.Draining = true
	if SameRecord(m, c) {
		t.Fatal("SameRecord missed Draining")
	}
}

func TestValidate(t *testing.T) {
	ok := Member{Name: "node-1.eu", Route: "node-1", HTTPAddr: "127.0.0.1:8081"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		m     func(*Member)
		field string
	}{
		{"empty name", func(m *Member) { m.Name = "" }, "Name"},
		{"name with space", func(m *Member) { m.Name = "a b" }, "Name"},
		{"long name", func(m *Member) { m.Name = strings.Repeat("a", MaxNameLen+1) }, "Name"},
		{"route with dot", func(m *Member) { m.Route = "a.b" }, "Route"},
		{"empty route", func(m *Member) { m.Route = "" }, "Route"},
		{"bad role", func(m *Member) { m.Role = 5 }, "Role"},
		{"long addr", func(m *Member) { m.HTTPAddr = strings.Repeat("a", MaxAddrLen+1) }, "HTTPAddr"},
		{"bad utf8", func(m *Member) { m.ChannelAddr = "\xff" }, "ChannelAddr"},
		{"app without name", func(m *Member) { m.Meta.Apps = []App{{Context: "/"}} }, "Meta.Apps[0].Name"},
		{"too many apps", func(m *Member) { m.Meta.Apps = make([]App, MaxApps+1) }, "Meta.Apps"},
		{"long extra", func(m *Member) { m.Meta.Extra = map[string]string{"k": strings.Repeat("v", MaxExtraValLen+1)} }, `Meta.Extra["k"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ok.Clone()
			tc.m(&m)
			err := m.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want a FieldError naming %s", err, tc.field)
			}
		})
	}
}

func TestDeriveKey(t *testing.T) {
	const secret = "0123456789abcdef"
	k1, err := DeriveKey(secret, "demo", PurposeGossipKeyring, 32)
	if err != nil || len(k1) != 32 {
		t.Fatalf("%v %d", err, len(k1))
	}
	again, _ := DeriveKey(secret, "demo", PurposeGossipKeyring, 32)
	other, _ := DeriveKey(secret, "demo2", PurposeGossipKeyring, 32)
	purpose, _ := DeriveKey(secret, "demo", PurposeMulticastHMAC, 32)
	secret2, _ := DeriveKey(secret+"x", "demo", PurposeGossipKeyring, 32)
	if !bytes.Equal(k1, again) {
		t.Fatal("not deterministic")
	}
	for name, k := range map[string][]byte{"cluster": other, "purpose": purpose, "secret": secret2} {
		if bytes.Equal(k1, k) {
			t.Fatalf("same key for a different %s", name)
		}
	}
	var fe *FieldError
	if _, err := DeriveKey("short", "demo", PurposeGossipKeyring, 32); !errors.As(err, &fe) || fe.Field != "Secret" {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := DeriveKey(secret, "", PurposeGossipKeyring, 32); !errors.As(err, &fe) || fe.Field != "Cluster" {
		t.Fatalf("empty cluster: %v", err)
	}
}

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.C():
		if !ok {
			t.Fatal("channel closed")
		}
		return ev
	case <-time.After(2 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func ev(typ EventType, name string) Event { return Event{Type: typ, Member: Member{Name: name}} }

func TestHubOrderAndFanOut(t *testing.T) {
	h := NewHub(0, nil)
	defer h.Close()
	a := h.Subscribe([]Event{ev(EventJoin, "x")})
	b := h.Subscribe(nil)
	h.Publish(ev(EventJoin, "n1"), ev(EventUpdate, "n1"))
	h.Publish(ev(EventDead, "n1"))
	if got := recv(t, a); got.Member.Name != "x" {
		t.Fatalf("initial event: %+v", got)
	}
	for _, s := range []*Subscription{a, b} {
		for _, want := range []EventType{EventJoin, EventUpdate, EventDead} {
			if got := recv(t, s); got.Type != want {
				t.Fatalf("got %v, want %v", got.Type, want)
			}
		}
	}
}

func TestHubSubscribersOwnTheirCopies(t *testing.T) {
	h := NewHub(0, nil)
	defer h.Close()
	a, b := h.Subscribe(nil), h.Subscribe(nil)
	h.Publish(Event{Type: EventJoin, Member: Member{Meta: Meta{Apps: []App{{Name: "orig"}}}}})
	ea := recv(t, a)
	ea.Member.Meta.Apps[0].Name = "mutated"
	if eb := recv(t, b); eb.Member.Meta.Apps[0].Name != "orig" {
		t.Fatal("subscribers share event memory")
	}
}

// TestHubSlowConsumer: a consumer that never reads must not block Publish;
// it loses the oldest events beyond the limit, and they are counted.
func TestHubSlowConsumer(t *testing.T) {
	h := NewHub(10, nil)
	defer h.Close()
	slow := h.Subscribe(nil)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			h.Publish(ev(EventUpdate, fmt.Sprint(i)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow consumer")
	}
	// The pump may hold one event in hand; the newest 10 are queued.
	if d := slow.Dropped(); d < 989 || d > 990 {
		t.Fatalf("dropped %d, want 989 or 990", d)
	}
	var last Event
	for i := 0; i < 10; i++ {
		last = recv(t, slow)
	}
	if last.Member.Name != "998" && last.Member.Name != "999" {
		t.Fatalf("last delivered %q", last.Member.Name)
	}
}

func TestHubClose(t *testing.T) {
	h := NewHub(0, nil)
	a := h.Subscribe(nil)
	b := h.Subscribe(nil)
	b.Close()
	b.Close()
	if _, ok := <-b.C(); ok {
		t.Fatal("closed subscription delivered")
	}
	h.Publish(ev(EventJoin, "n")) // a never reads it
	h.Close()
	h.Close()
	for range a.C() { // drains whatever was in hand, then closed
	}
	if _, ok := <-h.Subscribe(nil).C(); ok {
		t.Fatal("Subscribe after Close is open")
	}
	h.Publish(ev(EventJoin, "after"))
}
