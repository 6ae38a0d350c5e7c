package valve

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// AccessLogFormat selects the line format of the access log valve.
type AccessLogFormat string

// The access log formats, named as in Apache httpd and Tomcat's AccessLogValve.
const (
	// FormatOff disables the access log.
	FormatOff AccessLogFormat = "off"
	// FormatCommon is `host ident user [time] "request" status bytes`.
	FormatCommon AccessLogFormat = "common"
	// FormatCombined is the common format followed by `"referer" "user-agent"`.
	FormatCombined AccessLogFormat = "combined"
)

// ParseAccessLogFormat checks a configured format name.
func ParseAccessLogFormat(s string) (AccessLogFormat, error) {
	switch f := AccessLogFormat(s); f {
	case FormatOff, FormatCommon, FormatCombined:
		return f, nil
	case "":
		return FormatOff, nil
	}
	return "", fmt.Errorf("access log format %q is not one of off|common|combined", s)
}

// AccessLog writes one line per request to out in the given format, after the response. It depends on
// RequestID for the status and size. Writes are serialized; a failing writer never fails a request.
func AccessLog(format AccessLogFormat, out io.Writer) Valve {
	if format == FormatOff || format == "" || out == nil {
		return nil
	}
	var mu sync.Mutex
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			info := InfoFrom(r.Context())
			if info == nil {
				return
			}
			line := formatLine(format, r, info)
			mu.Lock()
			_, _ = io.WriteString(out, line)
			mu.Unlock()
		})
	}
}

func formatLine(format AccessLogFormat, r *http.Request, info *Info) string {
	var b strings.Builder
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	user := "-"
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		user = quoteless(u)
	}
	status := info.Status
	if status == 0 {
		status = http.StatusOK
	}
	size := "-"
	if info.Bytes > 0 {
		size = strconv.FormatInt(info.Bytes, 10)
	}
	fmt.Fprintf(&b, "%s - %s [%s] \"%s %s %s\" %d %s", host, user,
		info.Start.Format("02/Jan/2006:15:04:05 -0700"), quoteless(r.Method), quoteless(r.RequestURI),
		quoteless(r.Proto), status, size)
	if format == FormatCombined {
		fmt.Fprintf(&b, " \"%s\" \"%s\"", orDash(r.Referer()), orDash(r.UserAgent()))
	}
	b.WriteByte('\n')
	return b.String()
}

// quoteless escapes what would break the line's structure: quotes, backslashes and control bytes.
func quoteless(s string) string {
	if !strings.ContainsFunc(s, func(c rune) bool { return c == '"' || c == '\\' || c < 0x20 || c == 0x7f }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return quoteless(s)
}
