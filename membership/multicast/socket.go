package multicast

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// sockets are the provider's two UDP sockets: recv is bound to the group
// address and port (shared with other members on the host through
// SO_REUSEADDR) and joined to the group on the configured interface only;
// send is bound to the interface's IPv4 address with IP_MULTICAST_IF pinned
// to the interface, loopback on (members on the same host hear each other)
// and the configured TTL.
type sockets struct {
	recv  net.PacketConn
	send  *net.UDPConn
	group *net.UDPAddr
}

func openSockets(ctx context.Context, ifName, address string, ttl int) (*sockets, error) {
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("multicast: Interface %q: %w", ifName, err)
	}
	if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
		return nil, fmt.Errorf("multicast: Interface %q is not up and multicast-capable (flags %v)", ifName, ifi.Flags)
	}
	src, err := interfaceIPv4(ifi)
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("multicast: Address %q: %w", address, err)
	}
	group := net.UDPAddrFromAddrPort(ap)

	lc := net.ListenConfig{Control: reuseAddr}
	recv, err := lc.ListenPacket(ctx, "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("multicast: listen on group %s: %w", group, err)
	}
	rp := ipv4.NewPacketConn(recv)
	if err := rp.JoinGroup(ifi, &net.UDPAddr{IP: group.IP}); err != nil {
		recv.Close()
		return nil, fmt.Errorf("multicast: join group %s on %s: %w", group.IP, ifName, err)
	}
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: src})
	if err != nil {
		recv.Close()
		return nil, fmt.Errorf("multicast: bind sender to %s: %w", src, err)
	}
	sp := ipv4.NewPacketConn(send)
	for _, step := range []struct {
		what string
		err  error
	}{
		{"IP_MULTICAST_IF", sp.SetMulticastInterface(ifi)},
		{"IP_MULTICAST_LOOP", sp.SetMulticastLoopback(true)},
		{"IP_MULTICAST_TTL", sp.SetMulticastTTL(ttl)},
	} {
		if step.err != nil {
			recv.Close()
			send.Close()
			return nil, fmt.Errorf("multicast: set %s on %s: %w", step.what, ifName, step.err)
		}
	}
	return &sockets{recv: recv, send: send, group: group}, nil
}

func (s *sockets) close() {
	s.recv.Close()
	s.send.Close()
}

func interfaceIPv4(ifi *net.Interface) (net.IP, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("multicast: addresses of Interface %q: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("multicast: Interface %q has no IPv4 address", ifi.Name)
}
