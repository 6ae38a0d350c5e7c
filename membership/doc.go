// Package membership is herd's one model of "who is in the cluster".
//
// A [Member] describes a node (or a router, which joins the cluster but holds
// no sessions): its name and session route, its HTTP and cluster-channel
// addresses, the apps it serves and its liveness [State]. A [Provider]
// discovers members and reports them as a snapshot ([Provider.Members]) and
// as an ordered stream of [Event]s (join, update, leave, dead).
//
// Two providers implement the interface:
//
//   - membership/multicast: Tomcat-style heartbeats on a multicast group,
//     authenticated with an HMAC derived from the cluster secret.
//   - membership/gossip: SWIM gossip on hashicorp/memberlist, encrypted with a
//     keyring derived from the cluster secret. A fixed member list ("static")
//     is gossip with that list as seeds.
//
// Every other herd package consumes this model and never imports memberlist
// or opens membership sockets itself.
//
// # Events and slow consumers
//
// Events are fanned out by a [Hub]: each subscriber has its own queue that the
// provider appends to without blocking, and a goroutine that feeds the
// subscriber's channel in order. Heartbeat and gossip processing therefore
// never wait for a consumer. If a subscriber falls more than its limit behind
// (see [Hub]), the oldest pending events are dropped and counted
// ([Subscription.Dropped]); the consumer can reconcile with Members().
//
// # Suspect
//
// StateSuspect is a snapshot-only state: Members() reports a member as suspect
// while it is overdue, but no event fires when a member becomes or stops being
// suspect. A suspect member either comes back (nothing happens) or is declared
// dead (an EventDead).
package membership
