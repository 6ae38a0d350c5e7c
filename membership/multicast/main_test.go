package multicast

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/herdproject/herd/membership"
	"github.com/herdproject/herd/membership/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m, true, childMain) }

// childMain runs one member in a helper process (mode "member"), configured
// from HERD_MC_CHILD="cluster|address|name". It prints "READY <incarnation>"
// and runs until killed.
func childMain(mode string) int {
	parts := strings.Split(os.Getenv("HERD_MC_CHILD"), "|")
	if mode != "member" || len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad child config")
		return 2
	}
	cfg := DefaultLocalConfig()
	cfg.Cluster, cfg.Secret, cfg.Address = parts[0], testSecret, parts[1]
	cfg.Local = membership.Member{Name: parts[2]}
	p, err := New(cfg)
	if err == nil {
		err = p.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("READY %d\n", p.Local().Incarnation)
	testutil.WaitSignal()
	_ = p.Leave(context.Background())
	_ = p.Shutdown()
	return 0
}
