//go:build linux && (386 || s390x)

package h1

import (
	"syscall"
	"unsafe"
)

// On 386 and s390x the socket calls went through socketcall (direct recvfrom and sendto need a newer
// kernel there than Go does); read and write do the same work. A peer's reset
// raises SIGPIPE on write, which the runtime ignores for every descriptor but standard output and
// error: the call fails with EPIPE.
const (
	sysRecv   = syscall.SYS_READ
	sysSend   = syscall.SYS_WRITE
	sendFlags = 0
)

// peekCall peeks at one byte of connection fd without waiting (through socketcall here). n is -1
// with an error.
func peekCall(fd uintptr, b *byte) (int, syscall.Errno) {
	n, _, err := syscall.Recvfrom(int(fd), unsafe.Slice(b, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil {
		e, _ := err.(syscall.Errno)
		return -1, e
	}
	return n, 0
}
