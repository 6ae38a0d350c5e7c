//go:build linux && (386 || s390x)

package h1

import "syscall"

// On 386 and s390x the socket calls went through socketcall (direct recvfrom and sendto need a newer
// kernel there than Go does); read and write do the same work. A peer's reset
// raises SIGPIPE on write, which the runtime ignores for every descriptor but standard output and
// error: the call fails with EPIPE.
const (
	sysRecv   = syscall.SYS_READ
	sysSend   = syscall.SYS_WRITE
	sendFlags = 0
)
