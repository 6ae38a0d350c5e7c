package config

import (
	"fmt"
	"strings"
)

// expandEnv replaces ${NAME} and ${NAME:-default} in s using lookup. ${NAME}
// with NAME unset is an error wrapping ErrUnsetVariable; set but empty gives
// "". ${NAME:-default} gives default when NAME is unset or empty. "$${" is a
// literal "${". Expanded values are not expanded again.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(rest, "${"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", fmt.Errorf("%w: unterminated \"${\" (write \"$${\" for a literal \"${\")", ErrSyntax)
			}
			val, err := lookupVar(rest[2:end], lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(val)
			i += end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// lookupVar resolves the inside of one ${...}.
func lookupVar(expr string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(expr, ":-")
	if !validVarName(name) {
		return "", fmt.Errorf("%w: invalid variable reference \"${%s}\" (want ${NAME} or ${NAME:-default})", ErrSyntax, expr)
	}
	val, ok := lookup(name)
	switch {
	case hasDef && val == "":
		return def, nil
	case !ok:
		return "", &problem{sentinel: ErrUnsetVariable,
			msg: fmt.Sprintf("environment variable %s is not set (set it, or write ${%s:-default})", name, name)}
	}
	return val, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// escapeEnv makes s survive expandEnv unchanged.
func escapeEnv(s string) string { return strings.ReplaceAll(s, "${", "$${") }
