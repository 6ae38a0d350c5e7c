// Package valve holds herd's request pipeline: a Valve wraps an http.Handler, and a chain of valves
// runs around every request a node serves, like Tomcat's valves or Caddy's middleware.
//
// The built-in valves are request id, access log, remote-address allow/deny, panic recovery and the
// replication valve. Per-request state shared between valves lives in one typed value reached through
// InfoFrom; the RequestID valve installs it, so it must run first (Chain checks nothing at runtime:
// the node builds its chain in one function, in order, see server.buildChain).
package valve

import (
	"context"
	"net/http"
	"time"
)

// Valve wraps the next handler of the chain. It has the standard library's middleware shape.
type Valve func(next http.Handler) http.Handler

// Chain composes valves so that the first one listed runs outermost (sees the request first and the
// response last).
func Chain(h http.Handler, valves ...Valve) http.Handler {
	for i := len(valves) - 1; i >= 0; i-- {
		if valves[i] != nil {
			h = valves[i](h)
		}
	}
	return h
}

// Info is the per-request state the valves share: set up by RequestID, filled in by the valves and the
// node as the request goes through, read by AccessLog after the response.
type Info struct {
	// ID is the request id (X-Request-Id).
	ID string
	// Start is when the node received the request.
	Start time.Time
	// App is the deployment key that served the request ("counter##1"), set by the node once routed.
	App string
	// Filtered is true when the replication valve's filter matched: the request never touches sessions.
	Filtered bool
	// Status and Bytes are the response status and body size, recorded by the response recorder.
	Status int
	Bytes  int64
}

type infoKey struct{}

// WithInfo returns a copy of ctx carrying info.
func WithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFrom returns the request's Info, or nil when the RequestID valve did not run for it.
func InfoFrom(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}
