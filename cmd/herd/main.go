// Command herd is the herd application server: `herd node` runs a node, `herd pack` builds a bundle,
// `herd version` prints the version. Run `herd help` for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/herdproject/herd/cluster"
	counterapp "github.com/herdproject/herd/webapps/counter/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand.
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"node", "run a node: herd node [--config FILE]", runNode},
		{"pack", "build a bundle: herd pack DIR [-o FILE]", runPack},
		{"deploy", "upload a bundle to a node: herd deploy FILE [--node ADDR]", runDeploy},
		{"undeploy", "remove an app from a node: herd undeploy NAME [--node ADDR]", runUndeploy},
		{"sessions", "list a node's sessions: herd sessions [--app KEY] [--node ADDR]", runSessions},
		{"keygen", "make a key pair for bundle signatures: herd keygen [-o FILE]", runKeygen},
		{"sign", "sign a bundle for farming (writes FILE.sig): herd sign [--key FILE] BUNDLE", runSign},
		{"up", "run a local cluster (nodes + router) with the sample apps: herd up [--nodes 3] [--dir herd-up]", runUp},
		{"router", "run the front router: herd router --config FILE", runRouter},
		{"status", "show the cluster as a node sees it: herd status [--config FILE] [--node ADDR] [--json]", runStatus},
		{"version", "print the version", func(_ context.Context, _ []string, out, _ io.Writer) error {
			_, err := fmt.Fprintln(out, "herd", version)
			return err
		}},
	}
}

func main() {
	cluster.Version = version
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code: 0 ok, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "_counter" { // the counter sample built into herd, run by `herd up`'s bundle
		return counterapp.Main()
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.As(err, new(usageError)):
				fmt.Fprintf(stderr, "herd %s: %v\nusage: %s\n", c.name, err, c.usage)
				return 2
			default:
				fmt.Fprintf(stderr, "herd %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "herd: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "herd - a clustered application server\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags parses fs and lets flags follow positional arguments (herd pack DIR -o FILE).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
