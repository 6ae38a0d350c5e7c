package valve

import (
	"net"
	"net/http"
	"net/netip"
)

// RemoteAddr allows or denies requests by the client's IP address, like Tomcat's RemoteAddrValve. A
// request from an address in deny is refused; when allow is not empty, so is one from an address outside
// it. Refused requests get 403. The address is the TCP peer's, never a forwarded header: a proxy in front
// must be allowed explicitly. Returns nil (no valve) when both lists are empty.
func RemoteAddr(allow, deny []netip.Prefix) Valve {
	if len(allow) == 0 && len(deny) == 0 {
		return nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !Permitted(r.RemoteAddr, allow, deny) {
				http.Error(w, "forbidden: remote address not allowed", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Permitted reports whether remoteAddr ("ip:port" or "ip") passes the allow and deny lists. An address
// that does not parse is refused whenever a list is set.
func Permitted(remoteAddr string, allow, deny []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return len(allow) == 0 && len(deny) == 0
	}
	ip = ip.Unmap()
	for _, p := range deny {
		if p.Contains(ip) {
			return false
		}
	}
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
