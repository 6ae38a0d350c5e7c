// Package router is herd's sticky front router: an HTTP reverse proxy that learns the nodes, their
// routes and their apps from membership, keeps each HTTP session on the node that owns it, fails
// over to the node holding the session's replica, and retries failures that are safe to retry.
//
// # Shape
//
// A Router is an http.Handler that forwards each request itself (hop-by-hop fields out, forwarding
// and trace fields in, bodies streamed both ways, upgrades piped) through a RoundTripper that selects
// the node and retries, over herd's own HTTP/1.1 client to the nodes (package internal/h1). Plain
// HTTP/1.x clients are served by internal/h1's server; with TLS or h2c, net/http's server takes over.
//
// On plain HTTP/1.1 the common request, a GET or HEAD without a body, no upgrade, Expect or TE, an
// ordinary target and at most 64 fields, takes a fast path (ServeFast): its head is forwarded as it
// came, with the router's fields edited in, and the node's answer goes back the same way, without an
// http.Request, header maps or per-field strings; selection, retries, fields, metrics and the access
// log are the same as on the full path (tests send 67 request and answer shapes through both and
// compare what the node and the client get). Anything else is declined before a byte is sent and
// served by ServeHTTP. In bench/haproxy, with the proxy sharing a core with the nodes, a small
// proxied request costs about 13.5 µs of the router's CPU (HAProxy's: 14 µs), two allocations, two
// writes and two reads: the client connection's requests are served inside one raw read of it (an
// internal/h1 session), so the wait for the next request needs no read that finds nothing.
// The routing [Table] is rebuilt from membership events (and from the static backends of [Settings])
// and swapped atomically; a request works on the snapshot it started with.
//
// Selection is a [Selector] chain, most specific first:
//
//	Pinned (router.pinHeader) -> Sticky (JSESSIONID=<id>.<route>) -> ReplicaHolder -> policy -> LastResort
//
// The policy ([RoundRobin] or [LeastConnections]) serves requests without a live sticky node, preferring
// the newest version of a parallel-deployed app, and the session's own version when the router saw the
// session being created.
//
// # Eligibility
//
// A node takes new sessions when membership reports it alive and not draining, its last active health
// check passed, and no request failed on it within RetryAfterFailure (a failure mark, read through the
// injected clock). A draining or leaving node (Meta.Draining, or membership state leaving) and a
// suspect one keep their sticky sessions until DrainTimeout after the drain began; after that, and
// when a node is dead, sticky requests fail over.
//
// # Retry rule
//
// An attempt that failed is retried on another node, up to MaxAttempts nodes, when:
//
//   - the connection to the node could not be made (a [DialError]): nothing was sent, so any method is
//     safe to retry; or
//   - the method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or the request carries an
//     Idempotency-Key header), no byte of the request body was read, and the failure is not a
//     timeout (a node that timed out may still be working on the request).
//
// Everything else (a POST that reached the node, a body already streamed, the client going away, a
// body over the size limit) is answered at once: 502 Bad Gateway, 504 Gateway Timeout, 503 Service
// Unavailable when no node could be chosen, 413 for a body too large, always with the request id.
// Every failed attempt except a client cancellation marks the node ineligible for RetryAfterFailure.
//
// # Headers
//
// The router sets X-Forwarded-For/Proto/Host (the client's X-Forwarded-* are dropped unless
// Options.TrustForwarded), X-Request-Id (kept when the client sent a sane one), W3C traceparent and B3
// (X-B3-TraceId, X-B3-SpanId, X-B3-ParentSpanId, X-B3-Sampled): an incoming trace is continued with a
// new span for the router, else a new trace starts. Hop-by-hop headers are stripped both ways.
package router
