//go:build linux && !386 && !s390x

package h1

import (
	"syscall"
	"unsafe"
)

// The socket calls proper: recvfrom and sendto skip the file layer that read and write go through,
// and sendto takes MSG_NOSIGNAL.
const (
	sysRecv   = syscall.SYS_RECVFROM
	sysSend   = syscall.SYS_SENDTO
	sendFlags = syscall.MSG_NOSIGNAL
)

// peekCall peeks at one byte of connection fd without waiting, as a raw system call: it cannot
// block, so the runtime's bookkeeping for calls that may (which wakes the monitor thread when the
// process was idle) is spared. n is -1 with an error.
func peekCall(fd uintptr, b *byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), 0
}
