package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdproject/herd/internal/testapps"
	"github.com/herdproject/herd/replication"
	"github.com/herdproject/herd/valve"
)

// dashboardStats is what a clustered node adds to /manager/api/stats (the replicator's own Stats
// type, so the dashboard is tested against the real shape): the dashboard must show it.
func dashboardStats() map[string]any {
	return map[string]any{
		"replication": replication.Stats{Manager: "delta", Mode: "pooled", AckTimeoutMs: 2000, AckPolicy: "respond",
			Ready: true, Peers: []replication.PeerStats{
				{Name: "peer-node2", Addr: "127.0.0.1:4002", Queue: 3, Sent: 120, Acked: 117, Messages: 60,
					Bytes: 40960, Failures: 1, LagMs: 12.5, LastError: "ack timeout"},
				{Name: "peer-node3", Addr: "127.0.0.1:4003", Sent: 118, Acked: 118, Messages: 59, Bytes: 39800, LagMs: 2},
			}},
		"channel": map[string]any{"openConnections": 4}, // a section the dashboard knows nothing about
		"farm": map[string]any{
			"transfers": []map[string]any{{"bundle": "shop##2.zip", "peer": "peer-node3", "bytes": 600, "size": 1000}},
		},
	}
}

// findChromium returns the path of a Chromium binary ($HERD_CHROMIUM first), or "".
func findChromium() string {
	if p := os.Getenv("HERD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium runs one headless Chromium invocation against a 127.0.0.1 URL with args added, and
// returns its stdout. Everything that is not loopback is unreachable for it: host names do not
// resolve and other addresses go to a proxy on a closed port. The whole process group is killed
// when it ends or overruns.
func chromium(t *testing.T, bin, target string, args ...string) []byte {
	t.Helper()
	profile := t.TempDir()
	base := []string{
		"--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio",
		"--hide-scrollbars", "--user-data-dir=" + profile,
		"--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
	}
	if os.Geteuid() == 0 {
		base = append(base, "--no-sandbox")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), target)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	pid := cmd.Process.Pid
	err := cmd.Wait()
	_ = syscall.Kill(-pid, syscall.SIGKILL) // helpers (zygote, renderer) left in its group
	if err != nil {
		t.Fatalf("chromium %v: %v\nstderr: %s", args, err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDashboardInChromium loads the dashboard of a real node with a deployed app in headless
// Chromium, by ?token= and by basic auth, checks the rendered page and that a screenshot of it is
// not blank.
func TestDashboardInChromium(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("no chromium binary (apt-get install -y chromium, or set HERD_CHROMIUM)")
	}
	n := newNode(t, func(o *Options) { o.Stats = dashboardStats })
	n.drop(testapps.Bundle(t, "hello", "hello.zip"))
	n.waitApp("hello", true)

	// Enough virtual time for the page to load and complete its first poll; fetches are real I/O and
	// Chromium waits for them before it advances virtual time.
	budget := "--virtual-time-budget=3000"
	dom := string(chromium(t, bin, n.url+"/manager/?token="+testToken, budget, "--dump-dom"))
	for _, want := range []string{
		`data-member="node1"`,                                             // the members table
		`data-app="hello"`,                                                // the cluster matrix and the node's apps
		">running<",                                                       // the app's state
		`data-peer="peer-node2"`, "mode pooled", "12.5 ms", "ack timeout", // replication from the stats
		"shop##2.zip",                // the farm transfer
		"app.deployed",               // the deploy event
		"node node1",                 // the header
		"open connections</dt><dd>4", // an unknown stats section, shown generically
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered dashboard lacks %q", want)
		}
	}
	if alertText(dom) != "" || !strings.Contains(dom, `id="alert" hidden`) {
		t.Errorf("the dashboard shows an error:\n%s", alertText(dom))
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
		return
	}

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if keep := os.Getenv("HERD_DASHBOARD_SCREENSHOT"); keep != "" { // to look at it
		shot = keep
	}
	chromium(t, bin, n.url+"/manager/?token="+testToken, budget, "--window-size=1280,900", "--screenshot="+shot)
	checkNotBlank(t, shot, 1280, 900)

	// A wrong token: the page is refused, nothing of the cluster is shown.
	dom = string(chromium(t, bin, n.url+"/manager/?token=wrong-"+testToken, budget, "--dump-dom"))
	if !strings.Contains(dom, "Missing or wrong manager credentials") || strings.Contains(dom, "data-member") {
		t.Errorf("with a wrong token the dashboard rendered:\n%s", dom)
	}

	// Basic auth: the browser authenticates the page and then every API call of its script.
	b := newNode(t, func(o *Options) { o.ManagerToken, o.ManagerUser, o.ManagerPassword = "", "admin", "s3cret-pass" })
	target := strings.Replace(b.url, "http://", "http://admin:s3cret-pass@", 1) + "/manager/"
	dom = string(chromium(t, bin, target, budget, "--dump-dom"))
	if !strings.Contains(dom, `data-member="node1"`) || !strings.Contains(dom, `id="alert" hidden`) {
		t.Errorf("with basic auth the dashboard did not render the members:\n%s", dom)
	}
}

// alertText extracts the dashboard's alert box from a DOM dump.
func alertText(dom string) string {
	if m := regexp.MustCompile(`(?s)<div class="alert"[^>]*>(.*?)</div>`).FindStringSubmatch(dom); m != nil {
		return m[1]
	}
	return "(no alert box)"
}

// checkNotBlank decodes the PNG and wants a real page in it: the expected size, many colours, and a
// good share of pixels that differ from the most common (background) colour.
func checkNotBlank(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != w || bounds.Dy() != h {
		t.Errorf("screenshot is %dx%d, want %dx%d", bounds.Dx(), bounds.Dy(), w, h)
	}
	colours, bg, share := colourStats(img)
	t.Logf("screenshot %s: %d distinct colours, %.1f%% of pixels off the background colour %08x",
		path, colours, 100*share, bg)
	if colours < 50 || share < 0.05 {
		t.Errorf("screenshot looks blank: %d colours, %.1f%% off background", colours, 100*share)
	}
}

// colourStats counts the distinct colours of img, its most common colour (RGBA packed) and the
// share of pixels of another colour.
func colourStats(img image.Image) (distinct int, background uint32, offShare float64) {
	counts := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[(r>>8)<<24|(g>>8)<<16|(bl>>8)<<8|a>>8]++
		}
	}
	best := 0
	for c, n := range counts {
		if n > best {
			best, background = n, c
		}
	}
	total := b.Dx() * b.Dy()
	return len(counts), background, float64(total-best) / float64(total)
}

// TestColourStatsSeesBlank makes sure the blank check can fail: a uniform image is blank.
func TestColourStatsSeesBlank(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	if n, _, share := colourStats(img); n != 1 || share != 0 {
		t.Fatalf("uniform image: %d colours, %.2f off background", n, share)
	}
}

// TestDashboardHTTP checks the page without a browser: credentials, headers, the CSP hashes of the
// inlined blocks, that ?token= opens the page but not the API, and that the token never reaches the
// access log.
func TestDashboardHTTP(t *testing.T) {
	accessLog := &testapps.SyncBuffer{}
	n := newNode(t, func(o *Options) {
		o.Valves.AccessLog, o.Valves.AccessLogOut = valve.FormatCommon, accessLog
	})
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, n.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/manager/", nil, http.StatusUnauthorized},
		{"/manager/?token=nope", nil, http.StatusUnauthorized},
		{"/manager/?token=" + testToken, nil, http.StatusOK},
		{"/manager/", []string{"Authorization", "Bearer " + testToken}, http.StatusOK},
		{"/manager?token=" + testToken, nil, http.StatusFound},
		{"/manager/api/members?token=" + testToken, nil, http.StatusUnauthorized}, // the API wants the header
	} {
		resp, body := get(c.path, c.hdr...)
		if resp.StatusCode != c.want {
			t.Errorf("GET %s %v: %d, want %d: %s", c.path, c.hdr, resp.StatusCode, c.want, body)
		}
	}

	resp, body := get("/manager/?token=" + testToken)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, block := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<` + block + `>(.*?)</` + block + `>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no inline <%s> in the page", block)
		}
		sum := sha256.Sum256([]byte(m[1]))
		want := block + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the inline %s (want %q)", csp, block, want)
		}
	}
	for k, v := range map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
		"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if resp, _ := get("/manager?token=" + testToken); resp.Header.Get("Location") != "/manager/?token="+testToken {
		t.Errorf("redirect to %q", resp.Header.Get("Location"))
	}

	// The access log is written after the response: wait for the last line.
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(accessLog.String(), "\n") < 8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logged := accessLog.String()
	if !strings.Contains(logged, "/manager/?token=REDACTED") {
		t.Errorf("the access log does not show the redacted dashboard request:\n%s", logged)
	}
	if strings.Contains(logged, testToken) {
		t.Errorf("the access log contains the manager token:\n%s", logged)
	}
}
