// Package replication copies a node's HTTP sessions to its peers over the cluster channel, so that
// any node can serve a session after its own node died.
//
// # What travels
//
// The session manager emits one Delta per change (session.Manager.SubscribeSync): a new session
// whole, then only the attributes set or removed by each request, access times coalesced to one
// "touched" message per tenth of the idle timeout, and the end of a session (invalidated or expired,
// announced by its owner only). Each delta carries the session's version; receivers apply a delta
// only when it is newer than their copy, so duplicated or reordered messages never roll a session
// back. A receiver that missed versions applies what it got and answers with the ids it needs whole,
// and the sender sends those sessions' full state in the same exchange.
//
// # Managers
//
// With the delta manager every node holds every session. With the backup manager a session lives on
// its primary (the node that serves it) and on Backups other nodes chosen by rendezvous hashing over
// the live nodes without the primary (package placement), the same computation the router makes to
// fail a session over. When membership changes, each primary sends its sessions whole to backups
// that are new to them, and the sessions whose primary died are adopted by the first of their
// backups in placement order, which sends them to its own backups: the cluster is back to 1+Backups
// copies without any request.
//
// # Modes
//
//   - async: the request does not wait; each peer has a bounded queue drained by its own sender in
//     batches. A full queue drops the change, counts and logs it, and the session is resent whole.
//   - sync: the change goes to every target peer before the response header leaves the node; one
//     message in flight per peer, so concurrent requests queue behind each other.
//   - pooled: like sync, with up to PoolSize messages in flight per peer over as many connections.
//
// In sync and pooled modes a peer that does not acknowledge within the ack timeout is logged and
// counted, and the request is answered normally (policy respond) or with 503 (policy fail); the
// session is marked for a whole resend to that peer. Touches and expiries always go through the
// queues: they never delay a request. SetMode changes the mode at run time (config reload).
//
// # Joining
//
// A starting node asks its peers for the sessions it must hold (all of them with the delta manager,
// from one peer; with the backup manager, from each peer, those that placement gives it) and
// receives them as a stream of deltas on a dedicated channel connection; Ready reports when that is
// over. A request for a session the node lacks (a failover the router sent to a node without a copy)
// fetches it from the member its cookie names, else from its placement holders, before it is served.
//
// # Safety
//
// Every message arrives over the authenticated channel; deltas are decoded by session.Delta's own
// decoder, which only fills its known fields, and validated before use. A malformed message is
// refused, counted and logged, and never affects other sessions.
package replication
