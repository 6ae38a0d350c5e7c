package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/herdproject/herd/config"
)

// sampleEnv is a value for every variable the config files reference: what compose and the
// Kubernetes downward API and Secret give them at run time.
var sampleEnv = map[string]string{
	"HERD_SECRET":    "sample-cluster-secret-0123456789abcdef",
	"HERD_TOKEN":     "sample-manager-token-0123456789",
	"HERD_NODE_NAME": "node1",
	"POD_NAME":       "herd-0",
	"POD_IP":         "10.1.2.3",
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// loadConfig loads a config file with config.Load after setting the variables it references from
// env (then sampleEnv); a reference to a variable neither knows is an error.
func loadConfig(t *testing.T, path string, env map[string]string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
		name, hasDefault := m[1], m[2] != ""
		v, ok := env[name]
		if !ok {
			v, ok = sampleEnv[name]
		}
		switch {
		case ok:
			t.Setenv(name, v)
		case !hasDefault:
			t.Fatalf("%s references ${%s}, which neither its environment nor the test's sampleEnv sets", path, name)
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load(%s): %v", path, err)
	}
	return cfg
}

// configFiles lists the config files under deploy/: the files of every directory named config.
func configFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Base(filepath.Dir(p)) == "config" {
			if _, ferr := config.FormatOf(p); ferr != nil {
				return fmt.Errorf("%s: config dirs hold config files only: %w", p, ferr)
			}
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found config files %v, want the compose and Kubernetes node and router configs", files)
	}
	return files
}

// TestConfigFilesLoad loads every config file under deploy/ the way `herd node --config` and
// `herd router --config` do.
func TestConfigFilesLoad(t *testing.T) {
	for _, p := range configFiles(t) {
		t.Run(p, func(t *testing.T) {
			cfg := loadConfig(t, p, nil)
			if cfg.Cluster.Membership.Kind != config.KindGossip || len(cfg.Cluster.Membership.Seeds) == 0 {
				t.Errorf("membership is %q with seeds %v, want gossip with seeds", cfg.Cluster.Membership.Kind,
					cfg.Cluster.Membership.Seeds)
			}
			if cfg.Cluster.Secret != sampleEnv["HERD_SECRET"] || cfg.Manager.Token != sampleEnv["HERD_TOKEN"] {
				t.Errorf("the cluster secret and manager token must come from $HERD_SECRET and $HERD_TOKEN")
			}
		})
	}
}

// ---- YAML helpers --------------------------------------------------------------------------------

// decodeAll parses every document of a YAML file (yaml.v3 resolves anchors and merge keys).
func decodeAll(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// get walks a decoded YAML tree by map keys and list indexes ("spec", "ports", 0, ...).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func num(v any, path ...any) int {
	switch n := get(v, path...).(type) {
	case int:
		return n
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// port returns the port of a host:port address.
func port(t *testing.T, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		t.Fatalf("%s %q: want a fixed port", what, addr)
	}
	return n
}

// ---- compose -------------------------------------------------------------------------------------

// TestComposeFile checks deploy/docker-compose.yml: three nodes and the router on one user-defined
// bridge network, each service's config file exists and loads with that service's environment, the
// ports the configs listen on are the ones the services expose, and the seeds are service names.
func TestComposeFile(t *testing.T) {
	doc := decodeAll(t, "docker-compose.yml")[0]
	services, _ := doc["services"].(map[string]any)
	nets, _ := doc["networks"].(map[string]any)
	if len(nets) != 1 {
		t.Fatalf("want one network, got %v", nets)
	}
	var network string
	for name, n := range nets {
		network = name
		if d := str(n, "driver"); d != "bridge" {
			t.Errorf("network %s: driver %q, want bridge", name, d)
		}
	}
	var nodes []string
	for name, svc := range services {
		cmd := list(svc, "command")
		if len(cmd) < 3 || cmd[1] != "--config" {
			t.Fatalf("service %s: command %v, want [node|router --config FILE]", name, cmd)
		}
		role, cfgPath := cmd[0].(string), cmd[2].(string)
		host := ""
		for _, v := range list(svc, "volumes") {
			src, dst, _ := strings.Cut(strings.TrimSuffix(v.(string), ":ro"), ":")
			if dst == cfgPath {
				host = src
			}
		}
		if host == "" {
			t.Fatalf("service %s: nothing mounted at %s", name, cfgPath)
		}
		env := map[string]string{}
		for k, v := range get(svc, "environment").(map[string]any) {
			env[k] = fmt.Sprint(v)
		}
		for k := range env {
			env[k] = sampleEnv[k] // compose's ${HERD_SECRET:?...} is the operator's value
		}
		if v, ok := get(svc, "environment", "HERD_NODE_NAME").(string); ok {
			env["HERD_NODE_NAME"] = v
		}
		cfg := loadConfig(t, filepath.FromSlash(host), env)
		if !slices.Contains(list(svc, "networks"), any(network)) {
			t.Errorf("service %s is not on network %s", name, network)
		}
		if str(svc, "build", "dockerfile") != "deploy/Dockerfile" || str(svc, "build", "context") != ".." {
			t.Errorf("service %s: build %v, want context .. and deploy/Dockerfile", name, get(svc, "build"))
		}
		open := composePorts(t, svc)
		gossip := port(t, "cluster.membership.bind", cfg.Cluster.Membership.Bind)
		want := map[string]int{"cluster.membership.bind": gossip}
		switch role {
		case "node":
			nodes = append(nodes, name)
			want["node.http"] = port(t, "node.http", cfg.Node.HTTP)
			want["cluster.replication.bind"] = port(t, "cluster.replication.bind", cfg.Cluster.Replication.Bind)
			if cfg.Node.Name != name || env["HERD_NODE_NAME"] != name {
				t.Errorf("service %s: node.name %q, HERD_NODE_NAME %q: want the service name (it is the host name the config binds)",
					name, cfg.Node.Name, env["HERD_NODE_NAME"])
			}
		case "router":
			want["router.http"] = port(t, "router.http", cfg.Router.HTTP)
		default:
			t.Fatalf("service %s runs %q", name, role)
		}
		for key, p := range want {
			if !open[p] {
				t.Errorf("service %s: %s listens on port %d, which the service neither exposes nor publishes (%v)",
					name, key, p, open)
			}
		}
		for _, seed := range cfg.Cluster.Membership.Seeds {
			h, _, _ := net.SplitHostPort(seed)
			if _, ok := services[h]; !ok || port(t, "seed", seed) != gossip {
				t.Errorf("service %s: seed %q is not a node service at the gossip port %d", name, seed, gossip)
			}
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"node1", "node2", "node3"}) || services["router"] == nil {
		t.Errorf("services: nodes %v and router %v, want node1..node3 and router", nodes, services["router"] != nil)
	}
}

// composePorts is the set of container ports a compose service exposes or publishes.
func composePorts(t *testing.T, svc any) map[int]bool {
	t.Helper()
	open := map[int]bool{}
	for _, e := range list(svc, "expose") {
		n, err := strconv.Atoi(strings.TrimSuffix(fmt.Sprint(e), "/udp"))
		if err != nil {
			t.Fatalf("expose %v: %v", e, err)
		}
		open[n] = true
	}
	for _, p := range list(svc, "ports") {
		s := fmt.Sprint(p)
		n, err := strconv.Atoi(strings.TrimSuffix(s[strings.LastIndexByte(s, ':')+1:], "/udp"))
		if err != nil {
			t.Fatalf("ports %v: %v", p, err)
		}
		open[n] = true
	}
	return open
}

// ---- Kubernetes ----------------------------------------------------------------------------------

// k8s is the parsed manifests of deploy/k8s.
type k8s struct {
	byKind map[string][]map[string]any
	kust   map[string]any
}

func (k *k8s) one(t *testing.T, kind, name string) map[string]any {
	t.Helper()
	for _, d := range k.byKind[kind] {
		if str(d, "metadata", "name") == name {
			return d
		}
	}
	t.Fatalf("no %s %s in deploy/k8s", kind, name)
	return nil
}

func loadK8s(t *testing.T) *k8s {
	t.Helper()
	k := &k8s{byKind: map[string][]map[string]any{}}
	k.kust = decodeAll(t, "k8s/kustomization.yaml")[0]
	var resources []string
	for _, r := range list(k.kust, "resources") {
		resources = append(resources, r.(string))
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml resources %v", f, resources)
		}
		for i, d := range decodeAll(t, f) {
			kind, name := str(d, "kind"), str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || kind == "" || name == "" {
				t.Fatalf("%s document %d: apiVersion, kind and metadata.name are required", f, i+1)
			}
			k.byKind[kind] = append(k.byKind[kind], d)
		}
	}
	for _, r := range resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml resource: %v", err)
		}
	}
	return k
}

// generatedFile maps a ConfigMap key of the kustomize-generated herd-config to its file.
func (k *k8s) generatedFile(t *testing.T, configMap, key string) string {
	t.Helper()
	for _, g := range list(k.kust, "configMapGenerator") {
		if str(g, "name") != configMap {
			continue
		}
		for _, f := range list(g, "files") {
			name, file, ok := strings.Cut(f.(string), "=")
			if !ok {
				name, file = filepath.Base(f.(string)), f.(string)
			}
			if name == key {
				return filepath.Join("k8s", filepath.FromSlash(file))
			}
		}
	}
	t.Fatalf("kustomization.yaml generates no ConfigMap %s with key %s", configMap, key)
	return ""
}

// podConfig finds the config file a pod template's container runs with (its --config argument,
// through the volume mounted there) and loads it with the container's environment: downward API
// fields and Secret keys get the sample values, and each Secret key must exist.
func (k *k8s) podConfig(t *testing.T, pod, container any) *config.Config {
	t.Helper()
	args := list(container, "args")
	i := slices.Index(args, any("--config"))
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("container %s: args %v lack --config FILE", str(container, "name"), args)
	}
	cfgPath := args[i+1].(string)
	var volume, key string
	for _, m := range list(container, "volumeMounts") {
		if mp := str(m, "mountPath"); strings.HasPrefix(cfgPath, mp+"/") {
			volume, key = str(m, "name"), strings.TrimPrefix(cfgPath, mp+"/")
		}
	}
	var configMap string
	for _, v := range list(pod, "volumes") {
		if str(v, "name") != volume {
			continue
		}
		configMap = str(v, "configMap", "name")
		for _, it := range list(v, "configMap", "items") {
			if str(it, "path") == key {
				key = str(it, "key")
			}
		}
	}
	if configMap == "" {
		t.Fatalf("container %s: %s is not on a ConfigMap volume", str(container, "name"), cfgPath)
	}
	env := map[string]string{}
	for _, e := range list(container, "env") {
		name := str(e, "name")
		switch {
		case get(e, "valueFrom", "fieldRef") != nil:
			env[name] = sampleEnv[name]
		case get(e, "valueFrom", "secretKeyRef") != nil:
			sec := k.one(t, "Secret", str(e, "valueFrom", "secretKeyRef", "name"))
			skey := str(e, "valueFrom", "secretKeyRef", "key")
			if get(sec, "stringData", skey) == nil && get(sec, "data", skey) == nil {
				t.Errorf("env %s: Secret %s has no key %s", name, str(sec, "metadata", "name"), skey)
			}
			env[name] = sampleEnv[name]
		default:
			env[name] = str(e, "value")
		}
	}
	return loadConfig(t, k.generatedFile(t, configMap, key), env)
}

// containerPorts maps a container's port names to "port/PROTOCOL".
func containerPorts(c any) map[string]string {
	out := map[string]string{}
	for _, p := range list(c, "ports") {
		proto := str(p, "protocol")
		if proto == "" {
			proto = "TCP"
		}
		out[str(p, "name")] = fmt.Sprintf("%d/%s", num(p, "containerPort"), proto)
	}
	return out
}

func checkPorts(t *testing.T, what string, have map[string]string, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if have[name] != w {
			t.Errorf("%s: container port %s is %q, want %q (from the config)", what, name, have[name], w)
		}
	}
}

// probePort checks a probe names a port of the container and returns the probe's path.
func probePort(t *testing.T, what string, probe any, ports map[string]string) string {
	t.Helper()
	var p any
	path := ""
	switch {
	case get(probe, "httpGet") != nil:
		p, path = get(probe, "httpGet", "port"), str(probe, "httpGet", "path")
	case get(probe, "tcpSocket") != nil:
		p = get(probe, "tcpSocket", "port")
	default:
		t.Fatalf("%s: no httpGet or tcpSocket", what)
	}
	if _, ok := ports[fmt.Sprint(p)]; !ok {
		t.Errorf("%s: port %v is not a named port of the container (%v)", what, p, ports)
	}
	return path
}

// TestKubernetesManifests checks deploy/k8s: every manifest parses and is listed in the
// kustomization; the node StatefulSet and the router Deployment run with config files that load,
// declare the ports those configs listen on, probe /readyz and /healthz, and stop gracefully; the
// headless Service is the gossip seed and selects the nodes, not-ready ones included.
func TestKubernetesManifests(t *testing.T) {
	k := loadK8s(t)

	sts := k.one(t, "StatefulSet", "herd")
	pod := get(sts, "spec", "template", "spec")
	node := get(pod, "containers", 0)
	cfg := k.podConfig(t, pod, node)
	ports := containerPorts(node)
	gossip := port(t, "cluster.membership.bind", cfg.Cluster.Membership.Bind)
	checkPorts(t, "StatefulSet herd", ports, map[string]string{
		"http":       fmt.Sprintf("%d/TCP", port(t, "node.http", cfg.Node.HTTP)),
		"channel":    fmt.Sprintf("%d/TCP", port(t, "cluster.replication.bind", cfg.Cluster.Replication.Bind)),
		"gossip-tcp": fmt.Sprintf("%d/TCP", gossip),
		"gossip-udp": fmt.Sprintf("%d/UDP", gossip),
	})
	if p := probePort(t, "node readinessProbe", get(node, "readinessProbe"), ports); p != "/readyz" {
		t.Errorf("node readinessProbe path %q, want /readyz", p)
	}
	if p := probePort(t, "node livenessProbe", get(node, "livenessProbe"), ports); p != "/healthz" {
		t.Errorf("node livenessProbe path %q, want /healthz", p)
	}
	checkGrace(t, "StatefulSet herd", pod, node, cfg.Node.ShutdownTimeout.Duration())

	headless := k.one(t, "Service", str(sts, "spec", "serviceName"))
	if str(headless, "spec", "clusterIP") != "None" || get(headless, "spec", "publishNotReadyAddresses") != true {
		t.Errorf("Service %s must be headless with publishNotReadyAddresses (the gossip seed)", str(headless, "metadata", "name"))
	}
	checkSelects(t, headless, sts)
	checkTargets(t, headless, ports)
	seedsOK := func(what string, c *config.Config) {
		for _, s := range c.Cluster.Membership.Seeds {
			h, _, _ := net.SplitHostPort(s)
			if h != str(headless, "metadata", "name") || port(t, "seed", s) != gossip {
				t.Errorf("%s: seed %q, want %s:%d (the headless Service at the nodes' gossip port)",
					what, s, str(headless, "metadata", "name"), gossip)
			}
		}
	}
	seedsOK("node config", cfg)

	dep := k.one(t, "Deployment", "herd-router")
	rpod := get(dep, "spec", "template", "spec")
	router := get(rpod, "containers", 0)
	rcfg := k.podConfig(t, rpod, router)
	rports := containerPorts(router)
	rgossip := port(t, "cluster.membership.bind", rcfg.Cluster.Membership.Bind)
	checkPorts(t, "Deployment herd-router", rports, map[string]string{
		"http":       fmt.Sprintf("%d/TCP", port(t, "router.http", rcfg.Router.HTTP)),
		"gossip-tcp": fmt.Sprintf("%d/TCP", rgossip),
		"gossip-udp": fmt.Sprintf("%d/UDP", rgossip),
	})
	probePort(t, "router readinessProbe", get(router, "readinessProbe"), rports)
	probePort(t, "router livenessProbe", get(router, "livenessProbe"), rports)
	checkGrace(t, "Deployment herd-router", rpod, router, rcfg.Router.DrainTimeout.Duration())
	seedsOK("router config", rcfg)
	if rcfg.Cluster.Name != cfg.Cluster.Name {
		t.Errorf("router joins cluster %q, nodes are in %q", rcfg.Cluster.Name, cfg.Cluster.Name)
	}
	front := k.one(t, "Service", "herd")
	checkSelects(t, front, dep)
	checkTargets(t, front, rports)

	for _, d := range []map[string]any{sts, dep} {
		sc := get(d, "spec", "template", "spec", "securityContext")
		if get(sc, "runAsNonRoot") != true || num(sc, "runAsUser") != 65532 {
			t.Errorf("%s: pods must run as the image's non-root user 65532", str(d, "metadata", "name"))
		}
	}
}

// checkGrace wants a preStop hook and a termination grace period longer than the hook's sleep plus
// the config's shutdown or drain time.
func checkGrace(t *testing.T, what string, pod, container any, shutdown time.Duration) {
	t.Helper()
	pre := get(container, "lifecycle", "preStop")
	if pre == nil {
		t.Errorf("%s: no preStop hook", what)
	}
	sleep := time.Duration(num(pre, "sleep", "seconds")) * time.Second
	grace := time.Duration(num(pod, "terminationGracePeriodSeconds")) * time.Second
	if grace <= sleep+shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %s must exceed preStop %s + shutdown %s", what, grace, sleep, shutdown)
	}
}

// checkSelects wants svc's selector to match the workload's pod labels.
func checkSelects(t *testing.T, svc, workload any) {
	t.Helper()
	sel, _ := get(svc, "spec", "selector").(map[string]any)
	labels, _ := get(workload, "spec", "template", "metadata", "labels").(map[string]any)
	if len(sel) == 0 {
		t.Errorf("Service %s has no selector", str(svc, "metadata", "name"))
	}
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("Service %s selects %s=%v, the pods of %s have %v", str(svc, "metadata", "name"), k, v,
				str(workload, "metadata", "name"), labels[k])
		}
	}
}

// checkTargets wants every targetPort of svc to be a named port of the container, same protocol.
func checkTargets(t *testing.T, svc any, ports map[string]string) {
	t.Helper()
	for _, p := range list(svc, "spec", "ports") {
		target := fmt.Sprint(get(p, "targetPort"))
		proto := str(p, "protocol")
		if proto == "" {
			proto = "TCP"
		}
		if have, ok := ports[target]; !ok || !strings.HasSuffix(have, "/"+proto) {
			t.Errorf("Service %s port %s: targetPort %s/%s is not a container port (%v)",
				str(svc, "metadata", "name"), str(p, "name"), target, proto, ports)
		}
	}
}

// TestDockerfile checks the image recipe: a Go 1.26 build stage with CGO off, a final stage FROM
// scratch holding the binary and CA certificates, a non-root user, the exposed ports of the configs,
// and /herd as the entrypoint.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string // instructions, continuation lines joined
	var cur string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && cur == "") {
			continue
		}
		if rest, ok := strings.CutSuffix(l, "\\"); ok {
			cur += rest + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	var stages []string
	var final []string
	for _, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			stages = append(stages, l)
			final = nil
		}
		final = append(final, l)
	}
	if len(stages) < 2 || !strings.Contains(stages[0], "golang:") || stages[len(stages)-1] != "FROM scratch" {
		t.Errorf("stages %q: want a golang build stage and a final FROM scratch", stages)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"ARG GO_VERSION=1.26", "CGO_ENABLED=0", "./cmd/herd"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	finalText := strings.Join(final, "\n")
	for _, want := range []string{"/etc/ssl/certs/ca-certificates.crt", "COPY --from=build /out/herd /herd",
		"USER 65532:65532", `ENTRYPOINT ["/herd"]`} {
		if !strings.Contains(finalText, want) {
			t.Errorf("final stage lacks %q", want)
		}
	}
	exposed := map[string]bool{}
	for _, l := range final {
		if rest, ok := strings.CutPrefix(l, "EXPOSE "); ok {
			for _, p := range strings.Fields(rest) {
				exposed[p] = true
			}
		}
	}
	for _, p := range configFiles(t) {
		cfg := loadConfig(t, p, nil)
		gp := port(t, p+" cluster.membership.bind", cfg.Cluster.Membership.Bind)
		want := map[string]string{"cluster.membership.bind (tcp)": fmt.Sprintf("%d/tcp", gp),
			"cluster.membership.bind (udp)": fmt.Sprintf("%d/udp", gp)}
		if filepath.Base(p) == "router.yaml" {
			want["router.http"] = fmt.Sprintf("%d/tcp", port(t, "router.http", cfg.Router.HTTP))
		} else {
			want["node.http"] = fmt.Sprintf("%d/tcp", port(t, "node.http", cfg.Node.HTTP))
			want["cluster.replication.bind"] = fmt.Sprintf("%d/tcp", port(t, "replication", cfg.Cluster.Replication.Bind))
		}
		for key, w := range want {
			if !exposed[w] {
				t.Errorf("%s: %s port %s is not exposed by the image (%v)", p, key, w, exposed)
			}
		}
		if cfg.Node.DeployDir != "/var/lib/herd/webapps" && filepath.Base(p) == "node.yaml" {
			t.Errorf("%s: node.deployDir %q is not the image's /var/lib/herd/webapps", p, cfg.Node.DeployDir)
		}
	}
}
