package config

// Cluster configures how this node joins its cluster. XML: <Cluster name=".."
// secret=".."> containing <Membership>, <Replication>, <Valve> and <Farm>.
type Cluster struct {
	// Name of the cluster; members of other clusters are ignored. Default herd.
	Name string `yaml:"name" xml:"name,attr,omitempty"`
	// Secret authenticates membership, replication and farming. Required (at
	// least 16 bytes) unless membership.kind is none; keep it out of the file
	// with ${HERD_SECRET}. Redacted in output.
	Secret string `yaml:"secret" xml:"secret,attr,omitempty"`
	// Membership says how members find each other.
	Membership Membership `yaml:"membership" xml:"Membership"`
	// Replication configures the cluster channel and session replication.
	Replication Replication `yaml:"replication" xml:"Replication"`
	// Valve configures the replication valve.
	Valve Valve `yaml:"valve" xml:"Valve"`
	// Farm configures bundle farming.
	Farm Farm `yaml:"farm" xml:"Farm"`
}

// Membership says how members discover each other. XML: <Membership kind=".."
// address=".." ...> with <Seed>host:port</Seed> child elements.
type Membership struct {
	// Kind is multicast | gossip | static | none. multicast: heartbeats to a
	// group (Tomcat's McastService); gossip: memberlist, joined through seeds;
	// static: the seeds are the members; none: standalone. Default multicast
	// when the cluster section is present, none when it is absent.
	Kind string `yaml:"kind" xml:"kind,attr,omitempty"`
	// Address is the multicast group host:port. Default 228.0.0.4:45564.
	Address string `yaml:"address" xml:"address,attr,omitempty"`
	// Interface is the network interface multicast is sent and received on.
	// Default lo, so nothing leaves the host until an operator names a real
	// interface.
	Interface string `yaml:"interface" xml:"interface,attr,omitempty"`
	// Frequency is the heartbeat (multicast) or probe (gossip, static)
	// interval. Default 500ms in the lan profile, 100ms in local.
	Frequency Duration `yaml:"frequency" xml:"frequency,attr,omitempty"`
	// DropTime declares a silent member gone; it must exceed 2×frequency.
	// Default 6×frequency (3s in the lan profile).
	DropTime Duration `yaml:"dropTime" xml:"dropTime,attr,omitempty"`
	// Bind is the host:port gossip and static membership listen on.
	// Default 127.0.0.1:7946.
	Bind string `yaml:"bind" xml:"bind,attr,omitempty"`
	// Seeds are host:port addresses of members to join (gossip) or of all
	// members (static). DNS names are allowed. Required for static.
	Seeds []string `yaml:"seeds" xml:"Seed"`
	// TTL is the multicast time to live, 1..255. Default 1 (one hop).
	TTL int `yaml:"ttl" xml:"ttl,attr,omitempty"`
	// Advertise is the host (IP or DNS name, no port) other members use to
	// reach this node's membership, channel and HTTP ports. Default: the host
	// of bind (gossip, static) or of replication.bind (multicast) when that is
	// a specific address; left empty for wildcard binds, and the membership
	// provider then uses the address of the interface.
	Advertise string `yaml:"advertise" xml:"advertise,attr,omitempty"`
	// Profile selects timing defaults: lan | local (one host: dev and tests).
	// Default lan.
	Profile string `yaml:"profile" xml:"profile,attr,omitempty"`
	// RejoinInterval is how often a node that lost its peers contacts the
	// seeds again. Default 30s in the lan profile, 5s in local.
	RejoinInterval Duration `yaml:"rejoinInterval" xml:"rejoinInterval,attr,omitempty"`
}

// Replication configures the cluster channel (authenticated TCP used by
// replication and farming) and session replication. XML: <Replication
// mode=".." ...> with an optional <TLS cert=".." key=".." ca=".."/> child.
type Replication struct {
	// Bind is the host:port of the cluster channel. Default 127.0.0.1:4001.
	Bind string `yaml:"bind" xml:"bind,attr,omitempty"`
	// Manager is the session manager: delta (every member holds every session,
	// Tomcat's DeltaManager) | backup (a primary plus backups copies).
	// Default delta.
	Manager string `yaml:"manager" xml:"manager,attr,omitempty"`
	// Backups is the number of copies besides the primary for the backup
	// manager, at least 1. Default 1.
	Backups int `yaml:"backups" xml:"backups,attr,omitempty"`
	// Mode is async (enqueue and respond) | sync (respond after every live
	// peer acked, one connection per peer) | pooled (sync over poolSize
	// connections per peer). Default pooled. Reloadable.
	Mode string `yaml:"mode" xml:"mode,attr,omitempty" reload:"true"`
	// PoolSize is the number of connections per peer in pooled mode.
	// Default 8.
	PoolSize int `yaml:"poolSize" xml:"poolSize,attr,omitempty"`
	// AckTimeout bounds the wait for acks in sync and pooled modes.
	// Default 2s. Reloadable.
	AckTimeout Duration `yaml:"ackTimeout" xml:"ackTimeout,attr,omitempty" reload:"true"`
	// AckPolicy says what a request whose acks timed out answers: respond (log,
	// count, answer normally) | fail (answer 503). Default respond. Reloadable.
	AckPolicy string `yaml:"ackPolicy" xml:"ackPolicy,attr,omitempty" reload:"true"`
	// QueueSize bounds the async send queue; when full, deltas are dropped and
	// counted. Default 10000.
	QueueSize int `yaml:"queueSize" xml:"queueSize,attr,omitempty"`
	// TLS, when cert is set, wraps the channel in mutual TLS.
	TLS TLS `yaml:"tls" xml:"TLS"`
}

// TLS names PEM files for mutual TLS on the cluster channel. All three are set
// together or not at all. XML: <TLS cert=".." key=".." ca=".."/>.
type TLS struct {
	// Cert is this member's certificate chain (PEM file).
	Cert string `yaml:"cert" xml:"cert,attr,omitempty"`
	// Key is the certificate's private key (PEM file).
	Key string `yaml:"key" xml:"key,attr,omitempty"`
	// CA is the bundle of CA certificates that members' certificates must
	// chain to (PEM file).
	CA string `yaml:"ca" xml:"ca,attr,omitempty"`
}

// Valve configures the replication valve. XML: <Valve filter=".."/>.
type Valve struct {
	// Filter is a regular expression (Go syntax) matched against the request
	// path; matching requests never trigger replication.
	// Default `.*\.(gif|js|jpe?g|png|css|ico|txt)$`. Reloadable.
	Filter string `yaml:"filter" xml:"filter,attr,omitempty" reload:"true"`
}

// Farm configures bundle farming: a bundle dropped in WatchDir is deployed on
// every member. Farming is off while WatchDir is empty. XML: <Farm
// watchDir=".." ...> with an optional <Signing required=".."><Key>..</Key>
// </Signing> child.
type Farm struct {
	// WatchDir is watched for bundles to deploy cluster-wide. Default empty:
	// farming off.
	WatchDir string `yaml:"watchDir" xml:"watchDir,attr,omitempty"`
	// TempDir receives bundles in transfer. Default <node.workDir>/farm when
	// watchDir is set.
	TempDir string `yaml:"tempDir" xml:"tempDir,attr,omitempty"`
	// Signing configures bundle signature checks.
	Signing Signing `yaml:"signing" xml:"Signing"`
	// UndeployOldVersions undeploys the older versions of an app (shop##1)
	// once a newer one (shop##2) is deployed. Default false.
	UndeployOldVersions bool `yaml:"undeployOldVersions" xml:"undeployOldVersions,attr,omitempty"`
}

// Signing configures ed25519 signatures on farmed bundles. XML: <Signing
// required="true"><Key>base64</Key>...</Signing>.
type Signing struct {
	// Required refuses bundles without a valid signature by one of Keys.
	// Default false.
	Required bool `yaml:"required" xml:"required,attr,omitempty"`
	// Keys are the trusted ed25519 public keys, standard base64 (32 bytes).
	Keys []string `yaml:"keys" xml:"Key"`
}
