package router

import "sync"

// versionMemo remembers the app version each session was created on, for parallel-deployed apps
// only, so that the session fails over to a node serving its version. It holds at most max entries
// and forgets the oldest first. The router learns an entry when a node sets a new session cookie.
type versionMemo struct {
	mu    sync.Mutex
	max   int
	m     map[string]string
	order []string // ring of ids in insertion order
	next  int
}

func newVersionMemo(max int) *versionMemo {
	return &versionMemo{max: max, m: map[string]string{}}
}

func (v *versionMemo) get(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[id]
}

func (v *versionMemo) put(id, version string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[id]; ok {
		v.m[id] = version
		return
	}
	if len(v.order) < v.max {
		v.order = append(v.order, id)
	} else {
		delete(v.m, v.order[v.next])
		v.order[v.next] = id
		v.next = (v.next + 1) % v.max
	}
	v.m[id] = version
}

func (v *versionMemo) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.m)
}
