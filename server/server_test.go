package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/session"
)

func TestStaticApp(t *testing.T) {
	n := newNode(t, nil)
	n.drop(testapps.Bundle(t, "hello", "hello.zip"))
	n.waitApp("hello", true)

	resp, err := http.Get(n.url + "/hello/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<html") {
		t.Fatalf("index: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Fatal("a static page created a session")
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("no validators: %v", resp.Header)
	}
	req, _ := http.NewRequest("GET", n.url+"/hello/", nil)
	req.Header.Set("If-None-Match", etag)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional GET: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", n.url+"/hello/index.html", nil)
	req.Header.Set("Range", "bytes=0-4")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != string(body[:5]) {
		t.Fatalf("range: %d %q", resp.StatusCode, part)
	}
	c := client()
	for path, want := range map[string]int{
		"/hello":              http.StatusMovedPermanently,
		"/hello/nope.html":    http.StatusNotFound,
		"/hello/../../etc/pw": http.StatusNotFound,
		"/elsewhere":          http.StatusNotFound,
		"/healthz":            http.StatusOK,
		"/readyz":             http.StatusOK,
		"/manager/api/apps":   http.StatusUnauthorized,
	} {
		resp, err := c.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestProcessAppSessionsAndRestart(t *testing.T) {
	n := newNode(t, func(o *Options) { o.Valves.Filter = regexp.MustCompile(`.*\.(png|css)$`) })
	n.drop(testapps.Bundle(t, "counter", "counter.zip"))
	n.waitApp("counter##1", true)

	c := client()
	var r counterReply
	for i := 1; i <= 3; i++ {
		resp := getJSON(t, c, n.url+"/counter/inc", &r)
		if r.Count != i || r.Node != "node1" || r.Session == "" {
			t.Fatalf("inc %d: %+v", i, r)
		}
		if i == 1 {
			sc := resp.Header.Get("Set-Cookie")
			if !strings.HasPrefix(sc, "JSESSIONID="+r.Session+".node1") || !strings.Contains(sc, "HttpOnly") ||
				!strings.Contains(sc, "SameSite=Lax") || !strings.Contains(sc, "Path=/counter") {
				t.Fatalf("cookie %q", sc)
			}
		}
		if resp.Header.Get("Herd-Session-Update") != "" {
			t.Fatal("the app's session header leaked to the client")
		}
	}
	id := r.Session
	getJSON(t, c, n.url+"/counter/get", &r)
	if r.Count != 3 || r.Session != id {
		t.Fatalf("get: %+v", r)
	}
	// A second browser has its own session.
	var r2 counterReply
	getJSON(t, client(), n.url+"/counter/inc", &r2)
	if r2.Count != 1 || r2.Session == id {
		t.Fatalf("second client: %+v", r2)
	}
	// A forged cookie gets a fresh session, never an error or the forged id.
	req, _ := http.NewRequest("GET", n.url+"/counter/inc", nil)
	req.Header.Set("Cookie", "JSESSIONID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.node1")
	req.Header.Set("Herd-Session", "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r3 counterReply
	_ = json.NewDecoder(resp.Body).Decode(&r3)
	resp.Body.Close()
	if resp.StatusCode != 200 || r3.Count != 1 || strings.HasPrefix(r3.Session, "AAAA") {
		t.Fatalf("forged cookie: %d %+v", resp.StatusCode, r3)
	}
	// A filtered path never touches the session store.
	before := n.sm.Len()
	resp, err = client().Get(n.url + "/counter/logo.png")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Set-Cookie") != "" || n.sm.Len() != before {
		t.Fatalf("filtered path created a session (%d -> %d)", before, n.sm.Len())
	}

	// kill -9 the app: the supervisor restarts it and the session (owned by the node) survives.
	app := n.waitApp("counter##1", true)
	pid := runtimeField(t, app, "pid")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := n.waitApp("counter##1", true)
		if p := runtimeField(t, a, "pid"); p != pid && p != 0 && runtimeField(t, a, "restarts") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app not restarted: %+v", a.Runtime)
		}
		time.Sleep(20 * time.Millisecond)
	}
	getJSON(t, c, n.url+"/counter/inc", &r)
	if r.Count != 4 || r.Session != id {
		t.Fatalf("after restart: %+v", r)
	}
}

func runtimeField(t *testing.T, a AppInfo, field string) int {
	t.Helper()
	b, _ := json.Marshal(a.Runtime)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	v, _ := m[field].(float64)
	return int(v)
}

func TestZipSlipRefusedAndGoodDeploymentKept(t *testing.T) {
	n := newNode(t, nil)
	n.drop(testapps.Bundle(t, "hello", "hello.zip"))
	n.waitApp("hello", true)

	escape := fmt.Sprintf("herd-zipslip-%d", time.Now().UnixNano())
	evil := filepath.Join(t.TempDir(), "hello##2.zip")
	testapps.ZipSlip(t, evil, escape)
	_, err := n.srv.DeployFile(t.Context(), evil)
	if err == nil || !strings.Contains(err.Error(), "../../"+escape) {
		t.Fatalf("zip-slip bundle: err %v, want one naming the entry", err)
	}
	n.drop(evil)
	time.Sleep(2 * time.Second) // settle time plus a tick: the watcher has looked at it
	for _, dir := range []string{n.work, filepath.Dir(n.work), filepath.Dir(filepath.Dir(n.work)), n.deploy, os.TempDir()} {
		if _, err := os.Stat(filepath.Join(dir, escape)); err == nil {
			t.Fatalf("zip-slip wrote %s", filepath.Join(dir, escape))
		}
	}
	if n.hasApp("evil") || n.hasApp("hello##2") {
		t.Fatalf("evil bundle deployed: %+v", n.srv.Apps())
	}
	resp, err := http.Get(n.url + "/hello/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("good deployment lost: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestDeployDirSlowCopyReplaceRemove(t *testing.T) {
	n := newNode(t, nil)
	src := testapps.Bundle(t, "hello", "hello.zip")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// A slow `cp`: the file grows in pieces; it must not be deployed half written.
	if err := os.MkdirAll(n.deploy, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(n.deploy, "hello.zip"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 100 {
		end := min(i+100, len(data))
		if _, err := f.Write(data[i:end]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	f.Close()
	first := n.waitApp("hello", true)

	// Replace with different bytes (same app, another static file): redeployed.
	repl := filepath.Join(t.TempDir(), "hello.zip")
	rebuildWithExtraFile(t, src, repl, "public/extra.txt", "extra")
	n.drop(repl)
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := n.waitApp("hello", true)
		if a.SHA256 != first.SHA256 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replaced bundle not redeployed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(n.url + "/hello/extra.txt")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("new content not served: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := os.Remove(filepath.Join(n.deploy, "hello.zip")); err != nil {
		t.Fatal(err)
	}
	n.waitApp("hello", false)
	if resp, _ := http.Get(n.url + "/hello/"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("undeployed app still answers %d", resp.StatusCode)
	}
	// The app leaves the routing table first; its files go once it stopped.
	gone := time.Now().Add(10 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(n.work, "apps"))
		if len(entries) == 0 {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("extracted files left after undeploy: %v", entries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParallelDeployment(t *testing.T) {
	n := newNode(t, nil)
	n.drop(testapps.Bundle(t, "counter", "counter##1.zip"))
	n.waitApp("counter##1", true)
	old := client()
	var r counterReply
	getJSON(t, old, n.url+"/counter/inc", &r)
	getJSON(t, old, n.url+"/counter/inc", &r)

	n.drop(testapps.Bundle(t, "counter", "counter##2.zip"))
	n.waitApp("counter##2", true)
	// The old client's session was created by version 1: it stays there.
	getJSON(t, old, n.url+"/counter/inc", &r)
	if r.Count != 3 {
		t.Fatalf("old session lost its version: %+v", r)
	}
	fresh := client()
	var r2 counterReply
	getJSON(t, fresh, n.url+"/counter/inc", &r2)
	apps := map[string]string{}
	for _, si := range n.sm.List() {
		apps[si.ID] = si.App
	}
	if apps[r.Session] != "counter##1" || apps[r2.Session] != "counter##2" {
		t.Fatalf("sessions by app: %v (old %s, new %s)", apps, r.Session, r2.Session)
	}
}

func TestManagerAPI(t *testing.T) {
	n := newNode(t, nil)
	data, err := os.ReadFile(testapps.Bundle(t, "hello", "hello.zip"))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := n.manager("PUT", "/apps/hello.zip", bytes.NewReader(data))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy by PUT: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(n.deploy, "hello.zip")); err != nil {
		t.Fatalf("uploaded bundle not kept in the deploy dir: %v", err)
	}
	resp, body = n.manager("PUT", "/apps/bad.zip", strings.NewReader("not a zip"))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "error") {
		t.Fatalf("garbage upload: %d %s", resp.StatusCode, body)
	}
	var members []MemberInfo
	resp, body = n.manager("GET", "/members", nil)
	if err := json.Unmarshal(body, &members); err != nil || len(members) != 1 || members[0].Name != "node1" ||
		len(members[0].Apps) != 1 || members[0].Apps[0].Context != "/hello" || members[0].HTTP == "" {
		t.Fatalf("members: %d %s", resp.StatusCode, body)
	}
	var apps []AppInfo
	_, body = n.manager("GET", "/apps", nil)
	if err := json.Unmarshal(body, &apps); err != nil || len(apps) != 1 || apps[0].Name != "hello" {
		t.Fatalf("apps: %s", body)
	}
	for _, p := range []string{"/sessions", "/stats"} {
		if resp, body := n.manager("GET", p, nil); resp.StatusCode != 200 || !json.Valid(body) {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", n.url+"/manager/api/apps", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	if resp, body := n.manager("DELETE", "/apps/hello.zip", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("undeploy: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(n.deploy, "hello.zip")); !os.IsNotExist(err) {
		t.Fatal("undeployed bundle still in the deploy dir")
	}
	if resp, _ := n.manager("DELETE", "/apps/hello.zip", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second undeploy: %d", resp.StatusCode)
	}
}

func TestMountWithGorillaStore(t *testing.T) {
	var n *node
	n = newNode(t, func(o *Options) { o.DeployDir = "" })
	store := session.NewStore(n.sm)
	type cart struct{ Items []string }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "shop")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		n, _ := s.Values["n"].(int)
		s.Values["n"] = n + 1
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d", n+1)
	})
	if err := n.srv.Mount("shop", "/shop", h); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Mount("other", "/shop", h); err == nil {
		t.Fatal("a second app took the same context")
	}
	c := client()
	for want := 1; want <= 3; want++ {
		resp, err := c.Get(n.url + "/shop/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != fmt.Sprint(want) {
			t.Fatalf("request %d answered %q", want, b)
		}
	}
	_ = sessions.Session{}
}

// rebuildWithExtraFile copies a zip bundle and adds a file to it.
func rebuildWithExtraFile(t *testing.T, from, to, name, body string) {
	t.Helper()
	in, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	out, err := addZipEntry(in, name, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	root := t.TempDir()
	sm, err := session.NewManager(session.Options{Route: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Name: "node1", HTTPAddr: "127.0.0.1:0", WorkDir: root, Sessions: sm,
		Valves: ValveOptions{AccessLogOut: io.Discard}})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	if err := srv.Mount("slow", "/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + srv.Addr() + "/slow/")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-started
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := <-result; got != "200 done" {
		t.Fatalf("in-flight request during shutdown: %s", got)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/slow/"); err == nil {
		t.Fatal("the node still accepts requests after Shutdown")
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	n := newNode(t, nil)
	n.drop(testapps.Bundle(t, "hello", "hello.zip"))
	n.waitApp("hello", true)
	for i := 0; i < 3; i++ {
		resp, err := http.Get(n.url + "/hello/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if resp, _ := http.Get(n.url + "/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without credentials: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", n.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`herd_http_requests_total{app="hello",code="200"} 3`, "herd_sessions_active 0", "herd_apps_deployed 1",
		`herd_http_request_duration_seconds_count{app="hello"} 3`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
