package valve

import (
	"net/http"
	"regexp"

	"github.com/herdproject/herd/session"
)

// DefaultFilter is the replication valve's default filter: paths of static assets.
const DefaultFilter = `.*\.(gif|js|jpe?g|png|css|ico|txt)$`

// Replication is the replication valve, after Tomcat's ReplicationValve. Requests whose URL path matches
// filter are marked as never touching the session store: no session is looked up, created, touched or
// replicated for them, so a static asset costs nothing. The session changes of every other request are
// committed by the session layer when the app's response ends, and replication ships them from there.
// A nil filter marks nothing. It depends on RequestID for Info.Filtered.
func Replication(filter *regexp.Regexp) Valve {
	if filter == nil {
		return nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if filter.MatchString(r.URL.Path) {
				if info := InfoFrom(r.Context()); info != nil {
					info.Filtered = true
				}
				r = session.Skip(r)
			}
			next.ServeHTTP(w, r)
		})
	}
}
