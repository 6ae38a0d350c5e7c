package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herdproject/herd/sdk"
	"github.com/herdproject/herd/session/wire"
)

func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv := httptest.NewServer(newHandler("node1", "/counter", sdk.NewStore(sdk.Options{}), log))
	t.Cleanup(srv.Close)
	return srv
}

// sessionHeader encodes a session as the node would, with count stored the
// way the sdk Store stores it.
func sessionHeader(t *testing.T, id string, isNew bool, count any) string {
	t.Helper()
	attrs := map[string][]byte{}
	if count != nil {
		var err error
		if attrs, err = wire.EncodeValues("counter", map[any]any{"count": count}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := wire.EncodeRequest(wire.SessionView{ID: id, New: isNew, Created: time.Now(), LastAccess: time.Now(),
		MaxInactive: 30 * time.Minute, Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func call(t *testing.T, srv *httptest.Server, path, header string) (answer, *wire.Update, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if header != "" {
		req.Header.Set(wire.RequestHeader, header)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a answer
	if resp.StatusCode == http.StatusOK && path != "/counter/healthz" {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("%s: body %q: %v", path, body, err)
		}
	}
	var u *wire.Update
	if h := resp.Header.Get(wire.UpdateHeader); h != "" {
		got, err := wire.DecodeUpdate(h)
		if err != nil {
			t.Fatal(err)
		}
		u = &got
	}
	return a, u, resp.StatusCode
}

func storedCount(t *testing.T, u *wire.Update) any {
	t.Helper()
	if u == nil {
		t.Fatal("no update header")
	}
	v, err := wire.DecodeValue(u.Set["counter|count"])
	if err != nil {
		t.Fatalf("stored count: %v", err)
	}
	return v
}

func TestInc(t *testing.T) {
	srv := testServer(t)
	tests := []struct {
		name    string
		header  string
		want    answer
		wantSet int
	}{
		{"no session at all", "", answer{"node1", 1, ""}, 1},
		{"tentative new session", sessionHeader(t, "newid", true, nil), answer{"node1", 1, "newid"}, 1},
		{"existing count", sessionHeader(t, "sid", false, 2), answer{"node1", 3, "sid"}, 3},
		{"foreign value type", sessionHeader(t, "sid", false, "two"), answer{"node1", 1, "sid"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, u, status := call(t, srv, "/counter/inc", tc.header)
			if status != http.StatusOK || a != tc.want {
				t.Fatalf("got %+v (%d), want %+v", a, status, tc.want)
			}
			if got := storedCount(t, u); got != tc.wantSet {
				t.Fatalf("stored %#v, want %d", got, tc.wantSet)
			}
			if len(u.Delete) != 0 || u.Invalidate || u.Renew {
				t.Fatalf("update %+v", u)
			}
		})
	}
}

func TestGet(t *testing.T) {
	srv := testServer(t)
	tests := []struct {
		name   string
		header string
		want   answer
	}{
		{"none", "", answer{"node1", 0, ""}},
		{"tentative new session", sessionHeader(t, "newid", true, nil), answer{"node1", 0, ""}},
		{"existing", sessionHeader(t, "sid", false, 5), answer{"node1", 5, "sid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, u, status := call(t, srv, "/counter/get", tc.header)
			if status != http.StatusOK || a != tc.want || u != nil {
				t.Fatalf("got %+v %+v (%d), want %+v and no update", a, u, status, tc.want)
			}
		})
	}
}

func TestHealthAndErrors(t *testing.T) {
	srv := testServer(t)
	if _, _, status := call(t, srv, "/counter/healthz", ""); status != http.StatusOK {
		t.Fatalf("healthz %d", status)
	}
	if _, _, status := call(t, srv, "/counter/inc", "not-a-session"); status != http.StatusInternalServerError {
		t.Fatalf("garbage session header: %d", status)
	}
	if _, _, status := call(t, srv, "/elsewhere", ""); status != http.StatusNotFound {
		t.Fatalf("outside context: %d", status)
	}
}

// TestServeStopsGracefully checks the SIGTERM path: cancelling the context
// drains the server and serve returns nil.
func TestServeStopsGracefully(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, newHandler("n", "/counter", sdk.NewStore(sdk.Options{}), log), log) }()
	url := "http://" + ln.Addr().String() + "/counter/healthz"
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return")
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestRunNeedsPort(t *testing.T) {
	t.Setenv(sdk.EnvPort, "")
	if err := run(context.Background(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("run without PORT succeeded")
	}
}
