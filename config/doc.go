// Package config holds herd's configuration: one documented Config struct,
// decoded from YAML (.yaml, .yml) or Tomcat-flavoured XML (.xml) with the
// same key spellings, defaults, validation, reload rules and redaction.
//
// The steps are kept apart and, except Load, pure:
//
//	Decode        syntax -> Config holding only what the file says, ${ENV} expanded
//	ApplyDefaults fills every unset key (Default() is an empty file, defaulted)
//	Validate      every problem, each naming its field, joined
//	ParseWith     Decode + ApplyDefaults + Validate, errors carrying lines
//	Load          read the file, syntax from the extension, ParseWith
//
// # Syntax
//
// YAML keys are the yaml tags of the Config struct (node.http,
// cluster.membership.kind, ...). XML uses a <Server> root, an element per
// section (<Node>, <Cluster>, <Membership>, <Replication>, <TLS>, <Valve>,
// <Farm>, <Signing>, <Sessions>, <Manager>, <Router>), attributes for scalar
// keys spelled as in YAML, and one child element per list item (<Seed>,
// <Key>, <Backend>, <TrustedProxy>, <Allow>, <Deny>):
//
//	<Server>
//	  <Node name="node1" http="127.0.0.1:8081"/>
//	  <Cluster name="demo" secret="${HERD_SECRET}">
//	    <Membership kind="gossip" bind="127.0.0.1:7946"><Seed>127.0.0.1:7947</Seed></Membership>
//	    <Replication mode="pooled" ackTimeout="2s"/>
//	  </Cluster>
//	</Server>
//
// Unknown keys, attributes and elements are errors naming the key and line.
// Durations are Go duration strings ("500ms", "30m"); sizes are bytes or
// "64KiB", "512MiB", "1GB"; networks are CIDRs or single IPs.
//
// # Environment variables
//
// ${NAME} and ${NAME:-default} are expanded inside values after parsing, so a
// variable's value cannot change the file's structure. ${NAME} with NAME
// unset is an error naming the variable and the field; ${NAME:-default} uses
// default when NAME is unset or empty; "$${" is a literal "${".
//
// # Standalone and clustered
//
// Without a cluster section (or with an empty one) membership.kind is "none":
// a standalone node that needs no secret. Any cluster setting makes the node
// clustered with membership.kind multicast by default, and cluster.secret is
// then required. All default addresses are on loopback and the default
// multicast interface is lo, so nothing leaves the host until an operator
// says so.
//
// # Reload
//
// Keys tagged `reload:"true"` (log level, access log, remote address lists,
// replication mode and ack handling, valve filter, manager credentials,
// router policy and timeouts) may change at runtime; CheckReload names every
// other changed key, and Reloadable extracts the subset to swap in.
package config
