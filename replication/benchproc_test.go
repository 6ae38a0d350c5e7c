package replication

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The process benchmark runs each node as a child process of the test binary: real herd nodes are
// separate processes, each with its own Go runtime and scheduler, and a replica's ack is only as
// quick as the peer's scheduler lets it be. Environment of a child:
const (
	roleNodeEnv = "HERD_REPL_BENCH_NODE" // the node's name; set only in children
	roleModeEnv = "HERD_REPL_BENCH_MODE" // off, async, sync or pooled
	rolePoolEnv = "HERD_REPL_BENCH_POOL" // poolSize
	roleSeedEnv = "HERD_REPL_BENCH_SEED" // gossip address of the first node ("" for the first)
	roleSizeEnv = "HERD_REPL_BENCH_SIZE" // members to wait for before reporting ready
	roleMgrEnv  = "HERD_REPL_BENCH_MGR"  // delta or backup
)

func TestMain(m *testing.M) {
	if name := os.Getenv(roleNodeEnv); name != "" {
		if err := runNodeRole(name); err != nil {
			fmt.Fprintf(os.Stderr, "bench node %s: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runNodeRole is a child: it starts the node, prints "GOSSIP <addr>", then "READY <url>" once it
// replicates to every other member, serves until its stdin closes, and prints "STATS <json>".
func runNodeRole(name string) error {
	mode := os.Getenv(roleModeEnv)
	pool, _ := strconv.Atoi(os.Getenv(rolePoolEnv))
	size, _ := strconv.Atoi(os.Getenv(roleSizeEnv))
	var seeds []string
	if s := os.Getenv(roleSeedEnv); s != "" {
		seeds = []string{s}
	}
	*benchMgr = os.Getenv(roleMgrEnv) // flags are not parsed in a child
	o := benchOpts(mode, pool)
	n, err := buildNode(name, o, slog.New(slog.DiscardHandler), seeds...)
	if err != nil {
		return err
	}
	defer n.stop()
	fmt.Printf("GOSSIP %s\n", n.mem.Addr())
	if !o.off {
		deadline := time.Now().Add(20 * time.Second)
		for n.rep.Ready() != nil || len(n.rep.view.Load().peers) != size-1 {
			if time.Now().After(deadline) {
				return errors.New("timed out waiting for the peers")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Printf("READY %s\n", n.srv.URL)
	cpu0 := processCPU()
	_, _ = io.Copy(io.Discard, os.Stdin) // closed when the load is over
	cpu := processCPU() - cpu0
	var st benchStats
	if !o.off {
		st = nodeStats(n)
	}
	st.CPU = cpu
	out, _ := json.Marshal(st)
	fmt.Printf("STATS %s\n", out)
	return nil
}

// benchChild is a running child node.
type benchChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// line reads the child's next line, which must start with prefix, and returns the rest.
func (c *benchChild) line(prefix string) (string, error) {
	if !c.out.Scan() {
		return "", fmt.Errorf("node exited before %q: %v", prefix, c.out.Err())
	}
	rest, ok := strings.CutPrefix(c.out.Text(), prefix+" ")
	if !ok {
		return "", fmt.Errorf("node printed %q, want %s", c.out.Text(), prefix)
	}
	return rest, nil
}

// runModeProcs runs one mode with every node in its own process and the load in this one.
func runModeProcs(b *testing.B, mode string) (r modeRow) {
	const size = 3
	var kids []*benchChild
	defer func() {
		for _, k := range kids {
			_ = k.stdin.Close()
			_ = k.cmd.Process.Kill() // ends a child that did not stop (a failed run); harmless after Wait
			_ = k.cmd.Wait()
		}
	}()
	var seed string
	for i := 1; i <= size; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), roleNodeEnv+"=node"+strconv.Itoa(i), roleModeEnv+"="+mode,
			rolePoolEnv+"="+strconv.Itoa(*benchPool), roleSeedEnv+"="+seed, roleSizeEnv+"="+strconv.Itoa(size), roleMgrEnv+"="+*benchMgr)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		k := &benchChild{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
		kids = append(kids, k)
		addr, err := k.line("GOSSIP")
		if err != nil {
			b.Fatal(err)
		}
		if i == 1 {
			seed = addr
		}
	}
	urls := make([]string, size)
	for i, k := range kids {
		u, err := k.line("READY")
		if err != nil {
			b.Fatal(err)
		}
		urls[i] = u
	}
	cpu0 := processCPU()
	r.res = runLoad(b, mode, urls)
	loadCPU := processCPU() - cpu0
	var st benchStats
	for _, k := range kids {
		_ = k.stdin.Close()
		js, err := k.line("STATS")
		if err != nil {
			b.Fatal(err)
		}
		var s benchStats
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			b.Fatal(err)
		}
		st.add(s)
	}
	r.cpu = perRequest(loadCPU+st.CPU, r.res)
	if mode != "off" {
		st.fill(&r)
	}
	return r
}
