package supervisor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The test binary doubles as the supervised app and as a "mini node": TestMain dispatches on
// helperModeEnv before running any test.
const helperModeEnv = "SUPERVISOR_TEST_MODE"

// runHelperMode runs the helper named by mode and exits; it returns false for an unknown mode.
func runHelperMode(mode string) bool {
	switch mode {
	case "app":
		helperApp()
	case "sleep":
		fmt.Printf("grandchild pid=%d\n", os.Getpid())
		for {
			time.Sleep(time.Hour)
		}
	case "mininode":
		miniNode()
	default:
		return false
	}
	return true
}

// helperApp serves HTTP on 127.0.0.1:$PORT. Behaviour switches (environment):
// HELPER_EXIT=code exit at once after a stderr line; HELPER_IGNORE_TERM=1 ignore SIGTERM;
// HELPER_UNHEALTHY=1 /healthz answers 503; HELPER_GRANDCHILD=1 spawn a child in the same group;
// HELPER_FLOOD=n print n stdout lines before listening; HELPER_LONGLINE=n print a line of n bytes.
func helperApp() {
	if code := os.Getenv("HELPER_EXIT"); code != "" {
		fmt.Fprintln(os.Stderr, "helper: fatal: boom at startup")
		var c int
		fmt.Sscan(code, &c)
		os.Exit(c)
	}
	if os.Getenv("HELPER_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	if os.Getenv("HELPER_GRANDCHILD") == "1" {
		exe, _ := os.Executable()
		c := exec.Command(exe)
		c.Env = []string{helperModeEnv + "=sleep"}
		c.Stdout = os.Stdout // holds the app's stdout pipe too
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "helper: grandchild:", err)
			os.Exit(4)
		}
	}
	var n int
	if _, err := fmt.Sscan(os.Getenv("HELPER_LONGLINE"), &n); err == nil {
		fmt.Println(strings.Repeat("x", n))
		fmt.Println("after-long-line")
	}
	if _, err := fmt.Sscan(os.Getenv("HELPER_FLOOD"), &n); err == nil {
		for i := range n {
			fmt.Printf("flood line %d %s\n", i, strings.Repeat("y", 80))
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: listen:", err)
		os.Exit(1)
	}
	fmt.Printf("helper: listening on %s\n", ln.Addr())
	fmt.Fprintln(os.Stderr, "helper: stderr hello")
	http.Serve(ln, helperMux())
}

func helperMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if os.Getenv("HELPER_UNHEALTHY") == "1" {
			fmt.Fprintln(os.Stderr, "helper: not ready: boom")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from pid %d greeting=%s\n", os.Getpid(), os.Getenv("GREETING"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		env := os.Environ()
		slices.Sort(env)
		fmt.Fprintln(w, strings.Join(env, "\n"))
	})
	mux.HandleFunc("/crash", func(http.ResponseWriter, *http.Request) {
		fmt.Fprintln(os.Stderr, "helper: crashing on request")
		os.Exit(3)
	})
	return mux
}

// miniNode plays a herd node: it supervises one helper app (in HELPER_DIR), prints APP_PID=<pid> and
// waits to be killed.
func miniNode() {
	exe, _ := os.Executable()
	p, err := New(Spec{
		Name:         "mini##1",
		Dir:          os.Getenv("HELPER_DIR"),
		Command:      []string{exe},
		Env:          map[string]string{helperModeEnv: "app"},
		HealthPath:   "/healthz",
		StartTimeout: 20 * time.Second,
	})
	if err == nil {
		err = p.Start(context.Background())
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("APP_PID=%d\n", p.PID())
	for {
		time.Sleep(time.Hour)
	}
}
