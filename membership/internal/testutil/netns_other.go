//go:build !linux

package testutil

// reexecInNetns is not possible outside Linux.
func reexecInNetns() (code int, ok bool) { return 0, false }
