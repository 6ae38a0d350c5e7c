package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herdproject/herd/farming"
	"github.com/herdproject/herd/replication"
	"github.com/herdproject/herd/server"
)

// runStatus prints the cluster as one node sees it: members, their roles, states, addresses and apps,
// then the node's own apps with their session counts. It is a client of the manager API.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "read the node address and manager token from this config file")
	nodeURL := fs.String("node", "", "node to ask (default: node.http of --config, or http://127.0.0.1:8081)")
	token := fs.String("token", "", "manager token (default: $HERD_TOKEN, or manager.token of --config)")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	mc, err := newManagerClient(*cfgPath, *nodeURL, *token)
	if err != nil {
		return err
	}
	var members []server.MemberInfo
	if err := mc.get(ctx, "/members", &members); err != nil {
		return err
	}
	var apps []server.AppInfo
	if err := mc.get(ctx, "/apps", &apps); err != nil {
		return err
	}
	var stats struct {
		Replication *replication.Stats `json:"replication"`
		Farm        *farming.Stats     `json:"farm"`
	}
	if err := mc.get(ctx, "/stats", &stats); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"node": mc.base, "members": members, "apps": apps, "replication": stats.Replication,
			"farm": stats.Farm})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MEMBER\tROLE\tSTATE\tHTTP\tAPPS\tLAST HEARD\n")
	for _, m := range members {
		name := m.Name
		if m.Local {
			name += " (this node)"
		}
		heard := "-"
		if m.LastHeard != nil && !m.Local {
			heard = time.Since(*m.LastHeard).Round(100*time.Millisecond).String() + " ago"
		}
		var as []string
		for _, a := range m.Apps {
			as = append(as, appLabel(a.Name, a.Version)+" "+a.Context)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Role, m.State, m.HTTP, orDash(strings.Join(as, ", ")), heard)
	}
	fmt.Fprintf(tw, "\nAPP (%s)\tCONTEXT\tKIND\tSTATE\tSESSIONS\tDEPLOYED\n", mc.base)
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", appLabel(a.Name, a.Version), a.Context, a.Kind, a.State,
			a.Sessions, a.DeployedAt.Local().Format(time.DateTime))
	}
	if r := stats.Replication; r != nil {
		manager := r.Manager
		if r.Backups > 0 {
			manager = fmt.Sprintf("%s (%d backup)", r.Manager, r.Backups)
		}
		fmt.Fprintf(tw, "\nREPLICATION TO\tMODE\tQUEUE\tSENT\tACKED\tFAILURES\tLAG\n")
		for _, p := range r.Peers {
			fmt.Fprintf(tw, "%s\t%s %s\t%d\t%d\t%d\t%d\t%.1fms\n", p.Name, r.Mode, manager, p.Queue, p.Sent, p.Acked,
				p.Failures, p.LagMs)
		}
		if len(r.Peers) == 0 {
			fmt.Fprintf(tw, "(no peers)\t%s %s\t-\t-\t-\t-\t-\n", r.Mode, manager)
		}
	}
	if f := stats.Farm; f != nil {
		fmt.Fprintf(tw, "\nFARM\tREADY\tLEDGER\tDEPLOYED\tTRANSFERS OK/FAILED\n")
		fmt.Fprintf(tw, "%s\t%v\t%d live, %d removed\t%s\t%d/%d\n", orDash(shortDigest(f.Digest)), f.Ready, f.Live, f.Tombstones,
			orDash(strings.Join(f.Deployed, ", ")), f.TransfersOK, f.TransfersFailed)
		for _, x := range f.Transfers {
			if x.Done {
				continue
			}
			fmt.Fprintf(tw, "  %s %s %s\t%.0f%%\t%s of %s\t%.1f MiB/s\t\n", x.Direction, x.File, x.Peer, x.Percent,
				byteSize(x.Bytes), byteSize(x.Size), x.Rate/(1<<20))
		}
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func appLabel(name, version string) string {
	if version == "" {
		return name
	}
	return name + "##" + version
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// managerClient calls one node's manager API.
type managerClient struct {
	base  string
	token string
	http  *http.Client
}

func newManagerClient(cfgPath, nodeURL, token string) (*managerClient, error) {
	if cfgPath != "" {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		if nodeURL == "" {
			nodeURL = cfg.Node.HTTP
		}
		if token == "" {
			token = cfg.Manager.Token
		}
	}
	if token == "" {
		token = os.Getenv("HERD_TOKEN")
	}
	if nodeURL == "" {
		nodeURL = "127.0.0.1:8081"
	}
	if !strings.Contains(nodeURL, "://") {
		nodeURL = "http://" + nodeURL
	}
	if token == "" {
		return nil, usageError{"no manager token: pass --token, set HERD_TOKEN, or --config with manager.token"}
	}
	return &managerClient{base: strings.TrimSuffix(nodeURL, "/"), token: token,
		http: &http.Client{Timeout: 10 * time.Second}}, nil
}

func (c *managerClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/manager/api"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("node %s: %s (HTTP %d)", c.base, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("node %s: HTTP %d", c.base, resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errors.New("node " + c.base + ": bad JSON from the manager API: " + err.Error())
	}
	return nil
}
