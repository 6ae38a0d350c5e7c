// Package session owns herd's HTTP sessions, the way a servlet container
// owns them: the node creates, finds, expires and re-keys sessions, keeps
// their attributes as opaque bytes, and sets the cookie
// (JSESSIONID=<id>.<route>, the route being the node name).
//
// The pieces:
//
//   - Manager holds the sessions of one node, expires idle ones (Run), and
//     reports every committed change as a Delta to its subscribers, in
//     version order per session. A replication layer subscribes to ship the
//     deltas to peers and calls ApplyRemote with theirs; Snapshot and All
//     give full states for state transfer.
//   - Session is one session: thread-safe attribute accessors, dirty
//     tracking between commits, a size limit, a version bumped by every
//     committed change.
//   - Manager.Handler binds a request to its session: it reads the cookies,
//     exposes a lazy Binding to the handler (FromRequest), sets, rewrites
//     (failover rebind) or expires the cookie at the first write of the
//     response, and commits after the handler returns.
//   - Binding.ProxyRequest and Binding.ProxyResponse speak the header
//     protocol of package wire to apps that run as processes.
//   - Store adapts the Binding to gorilla/sessions for in-process Go apps.
//
// Session ids carry 192 bits from crypto/rand. A client never chooses one:
// a forged, unknown or expired id simply yields a fresh session when the
// app asks for one.
package session
