//go:build !linux

package h1

import "net"

// rawIO returns c: raw system calls are used on Linux only.
func rawIO(c net.Conn) net.Conn { return c }

const maxVec = 8
