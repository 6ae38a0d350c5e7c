//go:build linux && !386 && !s390x

package h1

import "syscall"

// The socket calls proper: recvfrom and sendto skip the file layer that read and write go through,
// and sendto takes MSG_NOSIGNAL.
const (
	sysRecv   = syscall.SYS_RECVFROM
	sysSend   = syscall.SYS_SENDTO
	sendFlags = syscall.MSG_NOSIGNAL
)
