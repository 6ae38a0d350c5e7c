package config

// Config is the whole configuration of a herd node or router. Each field's doc
// comment is the operator documentation of its key. The yaml tag is the key's
// spelling in both syntaxes; the xml tag says whether the key is an attribute
// (scalars) or an element (sections and list items). A `reload:"true"` tag marks
// keys that may change while the process runs (see [CheckReload]).
type Config struct {
	// Node configures this node: identity, HTTP listener, directories, logging
	// and app limits.
	Node Node `yaml:"node" xml:"Node"`
	// Cluster configures membership, replication and farming. Leave the section
	// out (or empty) for a standalone node: membership.kind is then "none".
	Cluster Cluster `yaml:"cluster" xml:"Cluster"`
	// Sessions configures HTTP sessions owned by the node.
	Sessions Sessions `yaml:"sessions" xml:"Sessions"`
	// Manager configures access to the manager API (/manager/api/*).
	Manager Manager `yaml:"manager" xml:"Manager"`
	// Router configures `herd router`, the sticky front router.
	Router Router `yaml:"router" xml:"Router"`
}

// Node configures this node. XML: <Node name=".." http=".." ...> with
// <TrustedProxy>, <Allow> and <Deny> child elements for the lists.
type Node struct {
	// Name identifies the node in the cluster and is the route suffix of its
	// session ids (JSESSIONID=<id>.<name>), like Tomcat's jvmRoute: letters,
	// digits, '-' and '_', at most 63. Default: Load derives it from the host
	// name; Default() and ApplyDefaults use "node1".
	Name string `yaml:"name" xml:"name,attr,omitempty"`
	// HTTP is the host:port of the listener for apps, health and the manager
	// API. Port 0 picks a free port. Default 127.0.0.1:8081.
	HTTP string `yaml:"http" xml:"http,attr,omitempty"`
	// DeployDir holds the bundles deployed on this node (Tomcat's appBase with
	// autoDeploy). Default ./webapps.
	DeployDir string `yaml:"deployDir" xml:"deployDir,attr,omitempty"`
	// WorkDir holds extracted apps and temporary files. Default ./work.
	WorkDir string `yaml:"workDir" xml:"workDir,attr,omitempty"`
	// LogLevel is the lowest level logged: debug | info | warn | error.
	// Default info. Reloadable.
	LogLevel string `yaml:"logLevel" xml:"logLevel,attr,omitempty" reload:"true"`
	// LogFormat is the log line format: text | json. Default text.
	LogFormat string `yaml:"logFormat" xml:"logFormat,attr,omitempty"`
	// AccessLog is the access log format: off | common | combined (the Apache
	// formats). Default off. Reloadable.
	AccessLog string `yaml:"accessLog" xml:"accessLog,attr,omitempty" reload:"true"`
	// ShutdownTimeout bounds a graceful shutdown (drain requests, leave the
	// cluster, stop apps). Default 10s.
	ShutdownTimeout Duration `yaml:"shutdownTimeout" xml:"shutdownTimeout,attr,omitempty"`
	// TrustedProxies lists the networks (CIDR, or a single IP) whose
	// X-Forwarded-For and X-Forwarded-Proto headers are believed, such as the
	// herd router's. Default loopback: [127.0.0.0/8, ::1/128]. Reloadable.
	TrustedProxies []CIDR `yaml:"trustedProxies" xml:"TrustedProxy" reload:"true"`
	// Allow, when not empty, admits only clients whose address (see
	// TrustedProxies) is in one of these networks: the remote address valve.
	// Default empty: everyone. Reloadable.
	Allow []CIDR `yaml:"allow" xml:"Allow" reload:"true"`
	// Deny refuses clients whose address is in one of these networks; it is
	// checked before Allow. Default empty. Reloadable.
	Deny []CIDR `yaml:"deny" xml:"Deny" reload:"true"`
	// MaxBundleSize caps the size of a bundle archive accepted by deploy and
	// farming, and of its extracted content. Default 512MiB.
	MaxBundleSize Size `yaml:"maxBundleSize" xml:"maxBundleSize,attr,omitempty"`
	// MaxBundleFiles caps the number of entries in a bundle. Default 10000.
	MaxBundleFiles int `yaml:"maxBundleFiles" xml:"maxBundleFiles,attr,omitempty"`
	// AppStartTimeout is how long a process app may take to answer its health
	// check after start. Default 60s.
	AppStartTimeout Duration `yaml:"appStartTimeout" xml:"appStartTimeout,attr,omitempty"`
	// AppStopTimeout is how long a process app has to exit after SIGTERM before
	// it is killed. Default 10s.
	AppStopTimeout Duration `yaml:"appStopTimeout" xml:"appStopTimeout,attr,omitempty"`
}

// Sessions configures the HTTP sessions a node owns. XML: <Sessions .../>.
type Sessions struct {
	// Cookie is the session cookie's name. Default JSESSIONID.
	Cookie string `yaml:"cookie" xml:"cookie,attr,omitempty"`
	// MaxInactive expires a session that has not been used for this long.
	// Default 30m.
	MaxInactive Duration `yaml:"maxInactive" xml:"maxInactive,attr,omitempty"`
	// MaxSize caps the encoded size of one session's attributes; a change that
	// makes a session larger is refused. Plain bytes or a size like "64KiB".
	// Default 64KiB.
	MaxSize Size `yaml:"maxSize" xml:"maxSize,attr,omitempty"`
	// SweepInterval is how often expired sessions are removed. Default 30s.
	SweepInterval Duration `yaml:"sweepInterval" xml:"sweepInterval,attr,omitempty"`
}

// Manager configures access to the manager API. With neither a token nor a
// username set, the manager API refuses every request. XML: <Manager .../>.
type Manager struct {
	// Token is the Bearer token for /manager/api/*; keep it out of the file
	// with ${HERD_TOKEN}. Redacted in output. Reloadable.
	Token string `yaml:"token" xml:"token,attr,omitempty" reload:"true"`
	// Username enables HTTP basic auth as an alternative to the token; it needs
	// Password. Reloadable.
	Username string `yaml:"username" xml:"username,attr,omitempty" reload:"true"`
	// Password is the basic auth password. Redacted in output. Reloadable.
	Password string `yaml:"password" xml:"password,attr,omitempty" reload:"true"`
}

// Router configures `herd router`. The router joins the membership described
// by the cluster section (as role router, holding no sessions) and, in
// addition, routes to the static Backends. XML: <Router http=".." ...> with
// <Backend> child elements.
type Router struct {
	// HTTP is the host:port the router listens on. Default 127.0.0.1:8080.
	HTTP string `yaml:"http" xml:"http,attr,omitempty"`
	// Policy picks the node for a request without a live sticky route:
	// round-robin | least-connections. Default round-robin. Reloadable.
	Policy string `yaml:"policy" xml:"policy,attr,omitempty" reload:"true"`
	// RetryAfterFailure is how long a node that failed a request is skipped.
	// Default 30s. Reloadable.
	RetryAfterFailure Duration `yaml:"retryAfterFailure" xml:"retryAfterFailure,attr,omitempty" reload:"true"`
	// Cookie is the session cookie whose ".route" suffix makes requests
	// sticky. Default: sessions.cookie.
	Cookie string `yaml:"cookie" xml:"cookie,attr,omitempty"`
	// MaxAttempts bounds the nodes tried for one request (only failures before
	// the request was sent, or idempotent requests, are retried). Default 3.
	// Reloadable.
	MaxAttempts int `yaml:"maxAttempts" xml:"maxAttempts,attr,omitempty" reload:"true"`
	// DialTimeout bounds connecting to a node. Default 2s. Reloadable.
	DialTimeout Duration `yaml:"dialTimeout" xml:"dialTimeout,attr,omitempty" reload:"true"`
	// ResponseHeaderTimeout bounds the wait for a node's response headers.
	// Default 60s. Reloadable.
	ResponseHeaderTimeout Duration `yaml:"responseHeaderTimeout" xml:"responseHeaderTimeout,attr,omitempty" reload:"true"`
	// IdleTimeout closes idle connections, to clients and to nodes. Default 90s.
	// Reloadable.
	IdleTimeout Duration `yaml:"idleTimeout" xml:"idleTimeout,attr,omitempty" reload:"true"`
	// HealthPath is the path polled on every node; 2xx means healthy.
	// Default /healthz. Reloadable.
	HealthPath string `yaml:"healthPath" xml:"healthPath,attr,omitempty" reload:"true"`
	// HealthInterval is how often nodes are polled. Default 5s. Reloadable.
	HealthInterval Duration `yaml:"healthInterval" xml:"healthInterval,attr,omitempty" reload:"true"`
	// DrainTimeout bounds how long a stopping router waits for requests in
	// flight. Default 30s. Reloadable.
	DrainTimeout Duration `yaml:"drainTimeout" xml:"drainTimeout,attr,omitempty" reload:"true"`
	// Backends is a static list of node HTTP addresses (host:port) routed to
	// besides the members learnt from membership. Default empty. Reloadable.
	Backends []string `yaml:"backends" xml:"Backend" reload:"true"`
	// PinHeader names a request header that pins a request to the node it
	// names, for tests and debugging. Default X-Herd-Node.
	PinHeader string `yaml:"pinHeader" xml:"pinHeader,attr,omitempty"`
}

// Accepted values of the enumerated keys.
const (
	KindMulticast = "multicast" // cluster.membership.kind: multicast heartbeats
	KindGossip    = "gossip"    // cluster.membership.kind: memberlist gossip
	KindStatic    = "static"    // cluster.membership.kind: fixed member list (seeds)
	KindNone      = "none"      // cluster.membership.kind: standalone node

	ProfileLAN   = "lan"   // cluster.membership.profile: LAN timings
	ProfileLocal = "local" // cluster.membership.profile: one-host timings (dev, tests)

	ManagerDelta  = "delta"  // cluster.replication.manager: every member holds every session
	ManagerBackup = "backup" // cluster.replication.manager: primary plus backups copies

	ModeAsync  = "async"  // cluster.replication.mode: enqueue, respond now
	ModeSync   = "sync"   // cluster.replication.mode: respond after acks, one connection
	ModePooled = "pooled" // cluster.replication.mode: respond after acks, pooled connections

	AckRespond = "respond" // cluster.replication.ackPolicy: log, count and answer anyway
	AckFail    = "fail"    // cluster.replication.ackPolicy: answer 503

	PolicyRoundRobin       = "round-robin"       // router.policy
	PolicyLeastConnections = "least-connections" // router.policy

	LogText = "text" // node.logFormat
	LogJSON = "json" // node.logFormat

	AccessLogOff      = "off"      // node.accessLog
	AccessLogCommon   = "common"   // node.accessLog
	AccessLogCombined = "combined" // node.accessLog
)
