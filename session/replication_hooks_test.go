package session

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// A synchronous subscriber runs before the client gets the response, and its verdict decides it.
func TestSyncSubscriberBeforeHeaderAndVerdict(t *testing.T) {
	e := newEnv(t, nil)
	var fail atomic.Bool
	var calls atomic.Int32
	e.m.SubscribeSync(func(d Delta) error {
		calls.Add(1)
		if fail.Load() && d.Kind != KindTouched {
			return errors.New("peers did not acknowledge")
		}
		return nil
	})
	r := e.get(t, "/inc", nil)
	id, _, c := r.session(t)
	if r.status != 200 || r.body != id+" 1" || calls.Load() != 1 {
		t.Fatalf("ok commit: %+v calls=%d", r, calls.Load())
	}
	fail.Store(true)
	r = e.get(t, "/inc", nil, "JSESSIONID="+c.Value)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "could not be replicated") || strings.Contains(r.body, id) {
		t.Fatalf("failed commit answered %d %q", r.status, r.body)
	}
	// The change was made locally all the same (the verdict only decides the answer).
	if s, _ := e.m.Get(id); s.Version() != 2 {
		t.Fatalf("version %d after failed replication", s.Version())
	}
	// A streamed response is committed at its first flush, before the body.
	fail.Store(false)
	before := calls.Load()
	r = e.get(t, "/stream", nil)
	if r.status != 200 || r.body != "chunk" || calls.Load() != before+1 {
		t.Fatalf("stream: %+v calls %d->%d", r, before, calls.Load())
	}
}

// A replica that this node starts serving is adopted: the next commit sends it whole, version bumped.
func TestAdoptedReplicaCommitsFull(t *testing.T) {
	e := newEnv(t, nil)
	d := Delta{ID: newID(), App: "root", Kind: KindCreated, Version: 3, Full: true,
		Set: map[string][]byte{"n": []byte("7"), "other": []byte("x")}, Created: e.clk.Now(),
		LastAccess: e.clk.Now(), MaxInactive: DefaultMaxInactive}
	if err := e.m.ApplyRemote(d); err != nil {
		t.Fatal(err)
	}
	r := e.get(t, "/get", nil, "JSESSIONID="+d.ID+".node2")
	if r.body != d.ID+" 7" {
		t.Fatalf("replica served %q", r.body)
	}
	all := e.rec.all()
	if len(all) != 1 || all[0].Kind != KindChanged || !all[0].Full || all[0].Version != 4 || len(all[0].Set) != 2 {
		t.Fatalf("adoption emitted %+v", all)
	}
	// Served again: an ordinary read-only request, nothing emitted.
	e.get(t, "/get", nil, "JSESSIONID="+d.ID+".node1")
	if len(e.rec.all()) != 1 {
		t.Fatalf("second read emitted %v", e.rec.kinds())
	}
}

// A session this node lacks is asked of the fetcher, then served.
func TestFetcherBringsMissingSession(t *testing.T) {
	e := newEnv(t, nil)
	id := newID()
	var asked atomic.Int32
	e.m.SetFetcher(func(ctx context.Context, gotID, route string) bool {
		asked.Add(1)
		if gotID != id || route != "node3" {
			return false
		}
		err := e.m.ApplyRemote(Delta{ID: id, App: "root", Kind: KindChanged, Version: 2, Full: true,
			Set: map[string][]byte{"n": []byte("41")}, Created: e.clk.Now(), LastAccess: e.clk.Now(),
			MaxInactive: DefaultMaxInactive})
		return err == nil
	})
	r := e.get(t, "/inc", nil, "JSESSIONID="+id+".node3")
	gotID, route, _ := r.session(t)
	if gotID != id || route != "node1" || r.body != id+" 42" || asked.Load() != 1 {
		t.Fatalf("fetched session: id=%v route=%s body=%q asked=%d", gotID == id, route, r.body, asked.Load())
	}
	// Unknown everywhere: a fresh session, the fetcher asked once more.
	other := newID()
	r = e.get(t, "/inc", nil, "JSESSIONID="+other+".node3")
	if newid, _, _ := r.session(t); newid == other || asked.Load() != 2 {
		t.Fatalf("unknown session reused or fetcher not asked: %d", asked.Load())
	}
	e.m.SetFetcher(nil)
	e.get(t, "/get", nil, "JSESSIONID="+newID()+".node3")
	if asked.Load() != 2 {
		t.Fatal("removed fetcher still called")
	}
}
