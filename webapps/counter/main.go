// Command counter is herd's sample process app: a counter kept in the HTTP
// session that the herd node owns.
//
//	GET /counter/inc      increments the counter: {"node":"node1","count":3,"session":"<id>"}
//	GET /counter/get      the same without incrementing (count 0, session "" when none)
//	GET /counter/healthz  200 when up
//
// It listens on 127.0.0.1:$PORT, names itself after $HERD_NODE, serves under
// $HERD_CONTEXT (default /counter) and stops gracefully on SIGTERM. The code is
// in package app; see its doc.
package main

import (
	"os"

	"github.com/herdproject/herd/webapps/counter/app"
)

func main() { os.Exit(app.Main()) }
