package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MinSecretLen is the shortest accepted cluster.secret, in bytes.
const MinSecretLen = 16

// validator collects problems, each naming its field.
type validator struct {
	errs []*FieldError
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: path, Err: invalidf(format, args...)})
}

func (v *validator) oneOf(path, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(path, "%q is not one of %s", got, strings.Join(allowed, "|"))
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be positive, got %s", d)
	}
}

func (v *validator) atLeast(path string, n, lowest int) {
	if n < lowest {
		v.add(path, "must be at least %d, got %d", lowest, n)
	}
}

func (v *validator) required(path, s string) bool {
	if s == "" {
		v.add(path, "required")
		return false
	}
	return true
}

// hostPort checks "host:port"; the host may be empty (all interfaces) only
// when emptyHost is true.
func (v *validator) hostPort(path, s string, emptyHost bool) {
	if !v.required(path, s) {
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(path, "%q is not host:port", s)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(path, "%q: port %q is not a number from 0 to 65535", s, port)
	}
	if host == "" && !emptyHost {
		v.add(path, "%q: host is missing", s)
	} else if host != "" && !validHost(host) {
		v.add(path, "%q: %q is neither an IP address nor a host name", s, host)
	}
}

// validHost accepts an IP address (zone allowed) or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// validToken reports whether s is an HTTP token (cookie or header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validRoute reports whether s may be a node name: the route suffix of a
// session id, so no dots.
func validRoute(s string) bool {
	if s == "" || len(s) > 63 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// Validate checks every key and the rules between keys, on a config with
// defaults applied. It is pure. It returns nil or all problems joined with
// errors.Join, each a *FieldError naming the field, such as
// `cluster.replication.mode: "fast" is not one of async|sync|pooled`; each matches
// ErrInvalid with errors.Is.
func (c Config) Validate() error { return joinFieldErrors(c.problems()) }

func (c Config) problems() []*FieldError {
	v := &validator{}
	c.validateNode(v)
	c.validateMembership(v)
	c.validateReplication(v)
	c.validateFarm(v)
	c.validateSessionsManager(v)
	c.validateRouter(v)
	c.validateAddresses(v)
	c.validateText(v)
	return v.errs
}

func (c Config) validateNode(v *validator) {
	n := c.Node
	if !validRoute(n.Name) {
		v.add("node.name", "%q must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit", n.Name)
	}
	v.hostPort("node.http", n.HTTP, true)
	v.required("node.deployDir", n.DeployDir)
	v.required("node.workDir", n.WorkDir)
	v.oneOf("node.logLevel", n.LogLevel, "debug", "info", "warn", "error")
	v.oneOf("node.logFormat", n.LogFormat, LogText, LogJSON)
	v.oneOf("node.accessLog", n.AccessLog, AccessLogOff, AccessLogCommon, AccessLogCombined)
	v.positive("node.shutdownTimeout", n.ShutdownTimeout)
	if n.MaxBundleSize <= 0 {
		v.add("node.maxBundleSize", "must be positive, got %s", n.MaxBundleSize)
	}
	v.atLeast("node.maxBundleFiles", n.MaxBundleFiles, 1)
	v.positive("node.appStartTimeout", n.AppStartTimeout)
	v.positive("node.appStopTimeout", n.AppStopTimeout)
}

func (c Config) validateMembership(v *validator) {
	cl, m := c.Cluster, c.Cluster.Membership
	v.oneOf("cluster.membership.kind", m.Kind, KindMulticast, KindGossip, KindStatic, KindNone)
	v.oneOf("cluster.membership.profile", m.Profile, ProfileLAN, ProfileLocal)
	v.positive("cluster.membership.frequency", m.Frequency)
	v.positive("cluster.membership.rejoinInterval", m.RejoinInterval)
	if m.DropTime <= 2*m.Frequency {
		v.add("cluster.membership.dropTime", "%s must be greater than 2×frequency (%s)", m.DropTime, 2*m.Frequency)
	}
	if m.TTL < 1 || m.TTL > 255 {
		v.add("cluster.membership.ttl", "must be from 1 to 255, got %d", m.TTL)
	}
	if m.Advertise != "" && !validHost(strings.TrimSuffix(strings.TrimPrefix(m.Advertise, "["), "]")) {
		v.add("cluster.membership.advertise", "%q must be an IP address or host name, without a port", m.Advertise)
	}
	for i, s := range m.Seeds {
		v.hostPort(fmt.Sprintf("cluster.membership.seeds[%d]", i), s, false)
	}
	if m.Kind == KindNone {
		return
	}
	v.required("cluster.name", cl.Name)
	switch {
	case cl.Secret == "":
		v.add("cluster.secret", "required when cluster.membership.kind is %s (for example secret: ${HERD_SECRET})", m.Kind)
	case len(cl.Secret) < MinSecretLen:
		v.add("cluster.secret", "must be at least %d bytes long, got %d", MinSecretLen, len(cl.Secret))
	}
	switch m.Kind {
	case KindMulticast:
		v.hostPort("cluster.membership.address", m.Address, false)
		if host, _, err := net.SplitHostPort(m.Address); err == nil {
			if a, err := netip.ParseAddr(host); err != nil || !a.IsMulticast() {
				v.add("cluster.membership.address", "%q is not a multicast group address (such as 228.0.0.4:45564)", m.Address)
			}
		}
		v.required("cluster.membership.interface", m.Interface)
	case KindGossip, KindStatic:
		v.hostPort("cluster.membership.bind", m.Bind, true)
		if m.Kind == KindStatic && len(m.Seeds) == 0 {
			v.add("cluster.membership.seeds", "static membership needs the members' addresses")
		}
	}
}

func (c Config) validateReplication(v *validator) {
	r := c.Cluster.Replication
	v.hostPort("cluster.replication.bind", r.Bind, true)
	v.oneOf("cluster.replication.manager", r.Manager, ManagerDelta, ManagerBackup)
	if r.Manager == ManagerBackup {
		v.atLeast("cluster.replication.backups", r.Backups, 1)
	}
	v.oneOf("cluster.replication.mode", r.Mode, ModeAsync, ModeSync, ModePooled)
	v.atLeast("cluster.replication.poolSize", r.PoolSize, 1)
	v.positive("cluster.replication.ackTimeout", r.AckTimeout)
	v.oneOf("cluster.replication.ackPolicy", r.AckPolicy, AckRespond, AckFail)
	v.atLeast("cluster.replication.queueSize", r.QueueSize, 1)
	if t := r.TLS; t != (TLS{}) && (t.Cert == "" || t.Key == "" || t.CA == "") {
		v.add("cluster.replication.tls", "cert, key and ca must be set together")
	}
	if _, err := regexp.Compile(c.Cluster.Valve.Filter); err != nil {
		v.add("cluster.valve.filter", "%v", err)
	}
}

func (c Config) validateFarm(v *validator) {
	f := c.Cluster.Farm
	if f.WatchDir != "" {
		v.required("cluster.farm.tempDir", f.TempDir)
	}
	if f.Signing.Required && len(f.Signing.Keys) == 0 {
		v.add("cluster.farm.signing.keys", "required when signing.required is true")
	}
	for i, k := range f.Signing.Keys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != ed25519.PublicKeySize {
			v.add(fmt.Sprintf("cluster.farm.signing.keys[%d]", i), "not a base64 ed25519 public key (%d bytes)", ed25519.PublicKeySize)
		}
	}
}

func (c Config) validateSessionsManager(v *validator) {
	s := c.Sessions
	if !validToken(s.Cookie) {
		v.add("sessions.cookie", "%q is not a valid cookie name", s.Cookie)
	}
	v.positive("sessions.maxInactive", s.MaxInactive)
	if s.MaxSize <= 0 {
		v.add("sessions.maxSize", "must be positive, got %s", s.MaxSize)
	}
	v.positive("sessions.sweepInterval", s.SweepInterval)
	m := c.Manager
	if (m.Username == "") != (m.Password == "") {
		v.add("manager.password", "username and password must be set together")
	}
	if strings.Contains(m.Username, ":") {
		v.add("manager.username", "must not contain ':'")
	}
}

// validateText refuses invalid UTF-8 and control characters in every string
// value: no key needs them, and they would not survive both syntaxes.
func (c Config) validateText(v *validator) {
	check := func(path, s string) {
		if !utf8.ValidString(s) {
			v.add(path, "is not valid UTF-8")
			return
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
				v.add(path, "must not contain control characters (found %U)", r)
				return
			}
		}
	}
	walkLeaves(reflect.ValueOf(c), reflect.Value{}, "", func(path string, _ field, x, _ reflect.Value) {
		switch {
		case x.Kind() == reflect.String:
			check(path, x.String())
		case x.Kind() == reflect.Slice && x.Type().Elem().Kind() == reflect.String:
			for i := range x.Len() {
				check(fmt.Sprintf("%s[%d]", path, i), x.Index(i).String())
			}
		}
	})
}

func (c Config) validateRouter(v *validator) {
	r := c.Router
	v.hostPort("router.http", r.HTTP, true)
	v.oneOf("router.policy", r.Policy, PolicyRoundRobin, PolicyLeastConnections)
	v.positive("router.retryAfterFailure", r.RetryAfterFailure)
	if !validToken(r.Cookie) {
		v.add("router.cookie", "%q is not a valid cookie name", r.Cookie)
	}
	v.atLeast("router.maxAttempts", r.MaxAttempts, 1)
	v.positive("router.dialTimeout", r.DialTimeout)
	v.positive("router.responseHeaderTimeout", r.ResponseHeaderTimeout)
	v.positive("router.idleTimeout", r.IdleTimeout)
	if !strings.HasPrefix(r.HealthPath, "/") {
		v.add("router.healthPath", "%q must start with /", r.HealthPath)
	}
	v.positive("router.healthInterval", r.HealthInterval)
	v.positive("router.drainTimeout", r.DrainTimeout)
	for i, b := range r.Backends {
		v.hostPort(fmt.Sprintf("router.backends[%d]", i), b, false)
	}
	if !validToken(r.PinHeader) {
		v.add("router.pinHeader", "%q is not a valid header name", r.PinHeader)
	}
}

// validateAddresses refuses two listeners of one node on the same address.
func (c Config) validateAddresses(v *validator) {
	type listener struct{ path, addr string }
	ls := []listener{{"node.http", c.Node.HTTP}}
	if k := c.Cluster.Membership.Kind; k != KindNone {
		ls = append(ls, listener{"cluster.replication.bind", c.Cluster.Replication.Bind})
		if k == KindGossip || k == KindStatic {
			ls = append(ls, listener{"cluster.membership.bind", c.Cluster.Membership.Bind})
		}
	}
	for i, a := range ls {
		_, port, err := net.SplitHostPort(a.addr)
		if err != nil || port == "0" {
			continue
		}
		for _, b := range ls[:i] {
			if a.addr == b.addr {
				v.add(a.path, "%s is already used by %s", a.addr, b.path)
			}
		}
	}
}
