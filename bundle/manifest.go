package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ManifestFile is the name of the manifest at the root of every bundle.
const ManifestFile = "manifest.yaml"

// maxManifestSize caps manifest.yaml; a manifest is a few hundred bytes.
const maxManifestSize = 1 << 20

// Kind is how an app runs.
type Kind string

// The bundle kinds.
const (
	// KindStatic serves the files of the static dir under the context.
	KindStatic Kind = "static"
	// KindProcess runs Command with PORT, HERD_NODE and HERD_CONTEXT in its environment and proxies
	// the context to it; it may also have a static dir.
	KindProcess Kind = "process"
)

// DefaultStaticDir is the static dir used when the manifest names none and the bundle has it.
const DefaultStaticDir = "public"

// Manifest is manifest.yaml. Keys are the yaml tags; unknown keys are errors.
type Manifest struct {
	// Name of the app: [a-z0-9][a-z0-9._-]{0,62}. Required; must equal the file name's name.
	Name string `yaml:"name"`
	// Version, [A-Za-z0-9._-]{1,64}; optional. When both the manifest and the file name carry a
	// version they must agree; when only one does, the bundle takes it.
	Version string `yaml:"version"`
	// Context is the URL path prefix the app serves: "/" (a ROOT app) or "/seg[/seg...]" without a
	// trailing slash. Default "/" + Name.
	Context string `yaml:"context"`
	// Kind is KindStatic (default) or KindProcess.
	Kind Kind `yaml:"kind"`
	// Command starts a process app (required there, refused for static apps). Command[0] is a bare
	// program name looked up in PATH, or (when it contains a "/") a path inside the bundle.
	Command []string `yaml:"command"`
	// Health is the path a process app answers 2xx on when ready (process only). "" means ready as
	// soon as the port accepts TCP connections.
	Health string `yaml:"health"`
	// Static is a directory inside the bundle served under the context. When empty, Open sets it to
	// "public" if the bundle has that directory; a static app must have one.
	Static string `yaml:"static"`
	// Env is added to a process app's environment (process only). PORT and HERD_* are reserved.
	Env map[string]string `yaml:"env"`
	// Platform is "os/arch" a process app was built for (process only); see CheckPlatform. Pack
	// sets GOOS, GOARCH and CGO_ENABLED=0 from it while running Build.
	Platform string `yaml:"platform"`
	// Build is a command Pack runs in the source dir before archiving (any kind).
	Build []string `yaml:"build"`
	// Exclude lists path.Match globs Pack leaves out. A glob without "/" matches a base name at any
	// depth; one with "/" matches the slash-separated path from the source dir; a trailing "/" is
	// ignored. A matching directory is left out with everything below it. manifest.yaml is
	// always packed; .git and the output file never are.
	Exclude []string `yaml:"exclude"`
	// StartTimeout bounds how long a process app may take to become ready (process only; 0 = the
	// server's default).
	StartTimeout time.Duration `yaml:"startTimeout"`
	// StopTimeout bounds a process app's graceful stop before it is killed (process only; 0 = the
	// server's default).
	StopTimeout time.Duration `yaml:"stopTimeout"`
}

// fields maps each yaml key to the field it decodes into.
func (m *Manifest) fields() map[string]any {
	return map[string]any{
		"name": &m.Name, "version": &m.Version, "context": &m.Context, "kind": &m.Kind,
		"command": &m.Command, "health": &m.Health, "static": &m.Static, "env": &m.Env,
		"platform": &m.Platform, "build": &m.Build, "exclude": &m.Exclude,
		"startTimeout": &m.StartTimeout, "stopTimeout": &m.StopTimeout,
	}
}

// ParseManifest decodes manifest.yaml, applies defaults (SetDefaults) and validates it. Errors are
// *ManifestError values naming the key and, when known, its line; they wrap ErrInvalidManifest.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > maxManifestSize {
		return nil, fieldError("(document)", "larger than %d bytes", maxManifestSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fieldError("(document)", "empty")
		}
		return nil, yamlError("(document)", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fieldError("(document)", "want exactly one YAML document")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &ManifestError{Field: "(document)", Line: doc.Line, Reason: "want a mapping of keys to values"}
	}
	m := &Manifest{}
	lines, err := m.decodeMapping(doc.Content[0])
	if err != nil {
		return nil, err
	}
	m.SetDefaults()
	if err := m.Validate(); err != nil {
		var me *ManifestError
		if errors.As(err, &me) && me.Line == 0 {
			key, _, _ := strings.Cut(me.Field, ".")
			key, _, _ = strings.Cut(key, "[")
			me.Line = lines[key]
		}
		return nil, err
	}
	return m, nil
}

// decodeMapping decodes each key into its field and returns the line of every key.
func (m *Manifest) decodeMapping(mapping *yaml.Node) (map[string]int, error) {
	fields := m.fields()
	lines := make(map[string]int, len(mapping.Content)/2)
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		k, v := mapping.Content[i], mapping.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, &ManifestError{Field: "(document)", Line: k.Line, Reason: "keys must be strings"}
		}
		target, ok := fields[k.Value]
		if !ok {
			return nil, &ManifestError{Field: k.Value, Line: k.Line, Reason: "unknown key"}
		}
		if _, dup := lines[k.Value]; dup {
			return nil, &ManifestError{Field: k.Value, Line: k.Line, Reason: "key given twice"}
		}
		lines[k.Value] = k.Line
		if err := v.Decode(target); err != nil {
			me := yamlError(k.Value, err)
			if me.Line == 0 {
				me.Line = v.Line
			}
			return nil, me
		}
	}
	return lines, nil
}

// yamlError turns a yaml decode error into a *ManifestError for field, keeping yaml's line.
func yamlError(field string, err error) *ManifestError {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			if _, err := fmt.Sscanf(n, "%d", &line); err == nil {
				msg = strings.TrimSpace(after)
			}
		}
	}
	return &ManifestError{Field: field, Line: line, Reason: msg}
}

// LoadManifest reads and parses dir/manifest.yaml (a source dir, as Pack reads it).
func LoadManifest(dir string) (*Manifest, error) {
	data, err := readFileLimited(filepath.Join(dir, ManifestFile), maxManifestSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoManifest, dir)
		}
		return nil, err
	}
	return ParseManifest(data)
}

func readFileLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, name, limit)
	}
	return data, nil
}

// SetDefaults fills Kind (KindStatic) and Context ("/" + Name) when they are empty. The static dir
// default depends on the bundle's contents; Open and Extract resolve it.
func (m *Manifest) SetDefaults() {
	if m.Kind == "" {
		m.Kind = KindStatic
	}
	if m.Context == "" && m.Name != "" {
		m.Context = "/" + m.Name
	}
}

// CheckPlatform reports whether the bundle can run on goos/goarch ("" means runtime.GOOS /
// runtime.GOARCH). Bundles without a platform run anywhere. The error wraps ErrPlatform.
func (m *Manifest) CheckPlatform(goos, goarch string) error {
	if goos == "" {
		goos = runtime.GOOS
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	if m.Platform == "" || m.Platform == goos+"/"+goarch {
		return nil
	}
	return fmt.Errorf("%w: bundle %s was built for %s, this node is %s/%s", ErrPlatform, m.Name, m.Platform, goos, goarch)
}
