package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herdproject/herd/session"
)

// clientFlags are the flags every manager API client command takes.
type clientFlags struct {
	config, node, token *string
	json                *bool
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		config: fs.String("config", "", "read the node address and manager token from this config file"),
		node:   fs.String("node", "", "node to talk to (default: node.http of --config, or 127.0.0.1:8081)"),
		token:  fs.String("token", "", "manager token (default: $HERD_TOKEN, or manager.token of --config)"),
		json:   fs.Bool("json", false, "print JSON"),
	}
}

func (f clientFlags) client() (*managerClient, error) {
	return newManagerClient(*f.config, *f.node, *f.token)
}

// runDeploy uploads a bundle: PUT /manager/api/apps/<file name>, with upload progress on stderr.
func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	cf := addClientFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"need exactly one bundle file"}
	}
	mc, err := cf.client()
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	body := &progressReader{r: f, total: fi.Size(), out: stderr, label: filepath.Base(pos[0]), start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, mc.base+"/manager/api/apps/"+url.PathEscape(filepath.Base(pos[0])), body)
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	var info map[string]any
	if err := mc.do(req, http.StatusCreated, &info); err != nil {
		return err
	}
	body.done()
	if *cf.json {
		return json.NewEncoder(stdout).Encode(info)
	}
	_, err = fmt.Fprintf(stdout, "deployed %v at %v (%v)\n", info["key"], info["context"], info["state"])
	return err
}

// runUndeploy removes an app: DELETE /manager/api/apps/<file name or key>.
func runUndeploy(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("undeploy", flag.ContinueOnError)
	cf := addClientFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"need exactly one app key or bundle file name"}
	}
	mc, err := cf.client()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, mc.base+"/manager/api/apps/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	if err := mc.do(req, http.StatusNoContent, nil); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "undeployed %s\n", pos[0])
	return err
}

// runSessions lists a node's sessions: GET /manager/api/sessions.
func runSessions(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	cf := addClientFlags(fs)
	app := fs.String("app", "", "only the sessions of this app key (name##version)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	mc, err := cf.client()
	if err != nil {
		return err
	}
	path := "/sessions"
	if *app != "" {
		path += "?app=" + url.QueryEscape(*app)
	}
	var list []session.Info
	if err := mc.get(ctx, path, &list); err != nil {
		return err
	}
	if *cf.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SESSION\tAPP\tCREATED\tIDLE\tSIZE\tVERSION\n")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", s.ID, s.App, s.Created.Local().Format(time.DateTime),
			time.Since(s.LastAccess).Round(time.Second), s.Size, s.Version)
	}
	fmt.Fprintf(tw, "(%d sessions)\n", len(list))
	return tw.Flush()
}

// do sends req with the token and decodes a JSON answer into v (when not nil).
func (c *managerClient) do(req *http.Request, want int, v any) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
	client := &http.Client{} // uploads may take longer than the status client's timeout
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("node %s: %s (HTTP %d)", c.base, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("node %s: HTTP %d: %s", c.base, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}

// progressReader draws an upload progress bar on a terminal-like writer, at most every 100ms.
type progressReader struct {
	r     io.Reader
	total int64
	sent  int64
	out   io.Writer
	label string
	start time.Time
	last  time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || err == io.EOF {
		p.last = now
		p.draw()
	}
	return n, err
}

func (p *progressReader) draw() {
	pct := 100.0
	if p.total > 0 {
		pct = float64(p.sent) * 100 / float64(p.total)
	}
	const width = 30
	filled := int(pct / 100 * width)
	rate := float64(p.sent) / max(time.Since(p.start).Seconds(), 1e-3) / (1 << 20)
	fmt.Fprintf(p.out, "\r%s [%s%s] %5.1f%% %.1f MiB/s", p.label, strings.Repeat("#", filled),
		strings.Repeat(" ", width-filled), pct, rate)
}

func (p *progressReader) done() { p.draw(); fmt.Fprintln(p.out) }
