package multicast

import (
	"testing"
	"time"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/wire"
)

func pkt(k kind, name string, inc, seq, rev uint64) packet {
	return packet{kind: k, seq: seq, rec: wire.Record{Cluster: "demo", Rev: rev, Member: membership.Member{
		Name: name, Route: name, Incarnation: inc}}}
}

func evTypes(evs []membership.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type.String()+":"+e.Member.Name)
	}
	return out
}

func TestRoster(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		p       *packet // nil: reap
		at      int     // ms
		want    []string
		verdict verdict
	}
	p := func(k kind, inc, seq, rev uint64) *packet { x := pkt(k, "a", inc, seq, rev); return &x }
	tests := []struct {
		name  string
		steps []step
	}{
		{"join then same record is quiet", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{p: p(kindHeartbeat, 1, 2, 1), at: 100},
		}},
		{"rev change is an update", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{p: p(kindHeartbeat, 1, 2, 2), at: 100, want: []string{"update:a"}},
		}},
		{"replayed and reordered seq dropped", []step{
			{p: p(kindHeartbeat, 1, 5, 1), want: []string{"join:a"}},
			{p: p(kindHeartbeat, 1, 5, 1), verdict: replayed},
			{p: p(kindHeartbeat, 1, 4, 2), verdict: replayed},
		}},
		{"silent member dies once", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{at: 3000},
			{at: 3001, want: []string{"dead:a"}},
			{at: 3500},
		}},
		{"dead member heard again rejoins", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{at: 3001, want: []string{"dead:a"}},
			{p: p(kindHeartbeat, 1, 2, 1), at: 3100, want: []string{"join:a"}},
		}},
		{"leave then late heartbeat", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{p: p(kindLeave, 1, 2, 1), want: []string{"leave:a"}},
			{p: p(kindLeave, 1, 3, 1), verdict: departed},
			{p: p(kindHeartbeat, 1, 4, 1), verdict: departed},
			{at: 5000},
		}},
		{"restart: dead old then join new", []step{
			{p: p(kindHeartbeat, 1, 9, 1), want: []string{"join:a"}},
			{p: p(kindHeartbeat, 2, 1, 1), at: 100, want: []string{"dead:a", "join:a"}},
			{p: p(kindHeartbeat, 1, 10, 1), at: 200, verdict: oldIncarnation},
		}},
		{"restart after death: join only", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{at: 3001, want: []string{"dead:a"}},
			{p: p(kindHeartbeat, 2, 1, 1), at: 3100, want: []string{"join:a"}},
		}},
		{"tombstone expires", []step{
			{p: p(kindHeartbeat, 1, 1, 1), want: []string{"join:a"}},
			{p: p(kindLeave, 1, 2, 1), want: []string{"leave:a"}},
			{at: 70000},
			{p: p(kindHeartbeat, 1, 1, 1), at: 70001, want: []string{"join:a"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoster(1500*time.Millisecond, 3*time.Second, 63*time.Second)
			for i, s := range tc.steps {
				var evs []membership.Event
				v := accepted
				if s.p != nil {
					evs, v = r.observe(*s.p, at(s.at))
				} else {
					evs = r.reap(at(s.at))
				}
				if got := evTypes(evs); !equal(got, s.want) || v != s.verdict {
					t.Fatalf("step %d: got %v verdict %d, want %v verdict %d", i, got, v, s.want, s.verdict)
				}
			}
		})
	}
}

func TestRosterSuspectAndStates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRoster(1500*time.Millisecond, 3*time.Second, time.Minute)
	evs, _ := r.observe(pkt(kindHeartbeat, "a", 1, 1, 1), t0)
	if evs[0].Member.State != membership.StateAlive {
		t.Fatalf("join state %v", evs[0].Member.State)
	}
	if got := r.present(t0.Add(time.Second)); len(got) != 1 || got[0].State != membership.StateAlive {
		t.Fatalf("at 1s: %+v", got)
	}
	if got := r.present(t0.Add(2 * time.Second)); len(got) != 1 || got[0].State != membership.StateSuspect {
		t.Fatalf("at 2s: %+v", got)
	}
	evs = r.reap(t0.Add(4 * time.Second))
	if len(evs) != 1 || evs[0].Member.State != membership.StateDead {
		t.Fatalf("reap: %+v", evs)
	}
	if got := r.present(t0.Add(4 * time.Second)); len(got) != 0 {
		t.Fatalf("dead member still present: %+v", got)
	}
	evs, _ = r.observe(pkt(kindHeartbeat, "b", 1, 1, 1), t0)
	evs2, _ := r.observe(pkt(kindLeave, "b", 1, 2, 1), t0)
	if len(evs) != 1 || len(evs2) != 1 || evs2[0].Member.State != membership.StateLeaving {
		t.Fatalf("leave: %+v", evs2)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
