package gossip

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
)

const testSecret = "0123456789abcdef-test-secret"

func TestMain(m *testing.M) { testutil.Main(m, false, childMain) }

// childMain runs one member in a helper process (mode "member"), configured
// from HERD_GOSSIP_CHILD="cluster|seed|name". It prints
// "READY <incarnation> <addr>" and runs until killed.
func childMain(mode string) int {
	parts := strings.Split(os.Getenv("HERD_GOSSIP_CHILD"), "|")
	if mode != "member" || len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad child config")
		return 2
	}
	cfg := DefaultLocalConfig()
	cfg.Cluster, cfg.Secret, cfg.Seeds = parts[0], testSecret, []string{parts[1]}
	cfg.Local = membership.Member{Name: parts[2]}
	p, err := New(cfg)
	if err == nil {
		err = p.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("READY %d %s\n", p.Local().Incarnation, p.Addr())
	testutil.WaitSignal()
	_ = p.Leave(context.Background())
	_ = p.Shutdown()
	return 0
}
