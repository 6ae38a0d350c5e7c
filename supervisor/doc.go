// Package supervisor runs and supervises the executable of a process app bundle on a herd node: the
// role of Cloud Foundry's DEA and health manager.
//
// A Process is built from a Spec with New (pure validation), started with Start and stopped with Stop:
//
//	p, err := supervisor.New(supervisor.Spec{Name: "counter##1", Dir: dir, Command: []string{"bin/counter"},
//		HealthPath: "/counter/healthz", Env: map[string]string{"HERD_NODE": "node1"}, Logger: log})
//	if err := p.Start(ctx); err != nil { ... }   // healthy, or an error with the app's last output lines
//	proxyTo(p.Addr())                            // read per request: the port may change after a restart
//	defer p.Stop(context.Background())
//
// Start picks a free port on Spec.Host, passes it as PORT, starts the command in Spec.Dir with a minimal
// environment (PATH, HOME, LANG, TMPDIR, then Spec.Env, then PORT; never the node's own environment,
// which may carry HERD_SECRET), and waits until the app is healthy: a 2xx answer to GET Spec.HealthPath,
// or an accepted TCP connection when HealthPath is empty. After that a supervision goroutine owned by the
// Process restarts the app whenever it exits, after an exponential backoff (state Backoff) that resets once
// the app has run healthy for Backoff.ResetAfter. With MaxRestarts set, a process that needs more restarts
// than that within RestartWindow goes to state Failed and stays down until it is stopped.
//
// No orphans: every app runs in its own process group (stopping signals the whole group, so the app's
// children die with it) and with the parent-death signal SIGKILL, so that the app dies when the node
// dies, even by SIGKILL. Linux delivers the parent-death signal when the thread that forked the child
// exits, not the process; the supervisor therefore forks from a goroutine locked to its OS thread and
// keeps that goroutine (and thread) waiting on the child until the child has exited. The app's own
// children are not covered by the parent-death signal when the node is SIGKILLed: an app that forks
// long-lived helpers should set it for them.
//
// The app's stdout and stderr are read line by line (lines longer than MaxLineBytes are truncated) and
// logged through Spec.Logger with the attributes app, stream and pid. A slow logger never blocks the app:
// lines go through a bounded queue and are counted and dropped when it is full. The last lines of each run
// are kept for error messages and Status.
//
// Process supervision needs Linux (parent-death signal); on other systems Start returns ErrUnsupported.
package supervisor
