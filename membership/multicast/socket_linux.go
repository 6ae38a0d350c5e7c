package multicast

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseAddr lets every member on the host bind the group port. It also
// turns off IP_MULTICAST_ALL, so the socket only gets groups it joined.
func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
