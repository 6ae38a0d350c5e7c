//go:build !linux

package multicast

import "syscall"

// reuseAddr is a no-op outside Linux: there only one member per host can
// bind the group port. herd's multicast provider is built and tested on Linux.
func reuseAddr(network, address string, c syscall.RawConn) error { return nil }
