package bundle

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Validate checks every field and the rules between them. It expects SetDefaults to have run (Kind
// and Context must be set). The error is a *ManifestError naming the first field at fault.
func (m *Manifest) Validate() error {
	if err := checkName(m.Name); err != nil {
		return fieldError("name", "%v", err)
	}
	if m.Version != "" {
		if err := checkVersion(m.Version); err != nil {
			return fieldError("version", "%v", err)
		}
	}
	if err := checkContext(m.Context); err != nil {
		return fieldError("context", "%v", err)
	}
	switch m.Kind {
	case KindStatic:
		if err := m.validateStaticOnly(); err != nil {
			return err
		}
	case KindProcess:
		if err := m.validateProcess(); err != nil {
			return err
		}
	case "":
		return fieldError("kind", "is empty (want static or process)")
	default:
		return fieldError("kind", "%q is not static or process", string(m.Kind))
	}
	if m.Static != "" {
		if _, err := cleanRelPath(m.Static); err != nil {
			return fieldError("static", "%v", err)
		}
	}
	for i, arg := range m.Build {
		if strings.IndexByte(arg, 0) >= 0 || i == 0 && arg == "" {
			return fieldError(fmt.Sprintf("build[%d]", i), "empty or contains a NUL byte")
		}
	}
	for i, pat := range m.Exclude {
		if _, err := path.Match(strings.TrimSuffix(pat, "/"), ""); err != nil || pat == "" || strings.IndexByte(pat, 0) >= 0 {
			return fieldError(fmt.Sprintf("exclude[%d]", i), "%q is not a valid glob", pat)
		}
	}
	return nil
}

// validateStaticOnly refuses the process-only keys on a static app.
func (m *Manifest) validateStaticOnly() error {
	only := []struct {
		key string
		set bool
	}{
		{"command", len(m.Command) > 0}, {"health", m.Health != ""}, {"env", len(m.Env) > 0},
		{"platform", m.Platform != ""}, {"startTimeout", m.StartTimeout != 0}, {"stopTimeout", m.StopTimeout != 0},
	}
	for _, o := range only {
		if o.set {
			return fieldError(o.key, "only for kind process (this bundle is kind static)")
		}
	}
	return nil
}

func (m *Manifest) validateProcess() error {
	if len(m.Command) == 0 || m.Command[0] == "" {
		return fieldError("command", "required for kind process")
	}
	for i, arg := range m.Command {
		if strings.IndexByte(arg, 0) >= 0 {
			return fieldError(fmt.Sprintf("command[%d]", i), "contains a NUL byte")
		}
	}
	if strings.Contains(m.Command[0], "/") {
		if _, err := cleanRelPath(m.Command[0]); err != nil {
			return fieldError("command[0]", "%v (want a path inside the bundle or a bare program name)", err)
		}
	}
	if m.Health != "" {
		if err := checkHealth(m.Health); err != nil {
			return fieldError("health", "%v", err)
		}
	}
	if err := checkEnv(m.Env); err != nil {
		return err
	}
	if m.Platform != "" {
		if err := checkPlatform(m.Platform); err != nil {
			return fieldError("platform", "%v", err)
		}
	}
	if m.StartTimeout < 0 {
		return fieldError("startTimeout", "%s is negative", m.StartTimeout)
	}
	if m.StopTimeout < 0 {
		return fieldError("stopTimeout", "%s is negative", m.StopTimeout)
	}
	return nil
}

// checkContext: "/" or "/seg[/seg...]" with segments of [A-Za-z0-9._~-], no "." or ".." segments.
func checkContext(c string) error {
	if c == "" {
		return fmt.Errorf("is empty")
	}
	if c[0] != '/' {
		return fmt.Errorf("%q must start with \"/\"", c)
	}
	if c == "/" {
		return nil
	}
	if len(c) > 256 {
		return fmt.Errorf("longer than 256 characters")
	}
	for _, seg := range strings.Split(c[1:], "/") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment or a trailing \"/\"", c)
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("%q has a %q segment", c, seg)
		}
		for i := 0; i < len(seg); i++ {
			if !isContextChar(seg[i]) {
				return fmt.Errorf("%q: character %q not allowed (want letters, digits, '.', '_', '~', '-')", c, seg[i])
			}
		}
	}
	return nil
}

func isContextChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-'
}

// checkHealth: an absolute URL path (a query is allowed), printable ASCII without spaces or '#'.
func checkHealth(h string) error {
	if h[0] != '/' {
		return fmt.Errorf("%q must start with \"/\"", h)
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f || h[i] == '#' {
			return fmt.Errorf("%q: character %q not allowed", h, h[i])
		}
	}
	return nil
}

// checkEnv: names [A-Za-z_][A-Za-z0-9_]*, not PORT or HERD_*, values without NUL bytes.
func checkEnv(env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "env." + k
		if !isEnvName(k) {
			return fieldError(field, "%q is not a valid variable name", k)
		}
		if k == "PORT" || strings.HasPrefix(k, "HERD_") {
			return fieldError(field, "%s is set by herd (PORT and HERD_* are reserved)", k)
		}
		if strings.IndexByte(env[k], 0) >= 0 {
			return fieldError(field, "value contains a NUL byte")
		}
	}
	return nil
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// checkPlatform: "os/arch", each part [a-z0-9]+.
func checkPlatform(p string) error {
	goos, goarch, ok := strings.Cut(p, "/")
	if !ok || !isLowerAlnum(goos) || !isLowerAlnum(goarch) {
		return fmt.Errorf("%q: want os/arch, e.g. linux/amd64", p)
	}
	return nil
}

func isLowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

// maxComponentLen is the longest file name most file systems accept.
const maxComponentLen = 255

// cleanRelPath checks a slash-separated path inside the bundle and returns it cleaned ("." for the
// root). It refuses absolute paths, ".." components, backslashes, drive letters and NUL bytes.
func cleanRelPath(p string) (string, error) {
	if err := checkPathChars(p); err != nil {
		return "", err
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q is absolute", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%q has a \"..\" component", p)
		}
		if len(seg) > maxComponentLen {
			return "", fmt.Errorf("%q has a component longer than %d bytes", p, maxComponentLen)
		}
	}
	return path.Clean(p), nil
}

// checkPathChars refuses empty paths, NUL bytes, backslashes and Windows drive letters.
func checkPathChars(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%q contains a NUL byte", p)
	case strings.IndexByte(p, '\\') >= 0:
		return fmt.Errorf("%q contains a backslash", p)
	case len(p) >= 2 && p[1] == ':' && (p[0] >= 'a' && p[0] <= 'z' || p[0] >= 'A' && p[0] <= 'Z'):
		return fmt.Errorf("%q starts with a drive letter", p)
	}
	return nil
}
