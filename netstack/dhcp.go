package netstack

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Lease is what a DHCP server granted (RFC 2131).
type Lease struct {
	Address  netip.Prefix
	Gateway  netip.Addr
	Server   netip.Addr
	Duration time.Duration
}

// ErrDHCP is returned when no usable lease was obtained.
var ErrDHCP = errors.New("netstack: DHCP")

// DHCP message types (RFC 2132, 9.6) and options used.
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
	dhcpNak      = 6

	optSubnetMask  = 1
	optRouter      = 3
	optRequestedIP = 50
	optLeaseTime   = 51
	optMessageType = 53
	optServerID    = 54
	optParamList   = 55
	optEnd         = 255

	dhcpMagic = 0x63825363
)

// dhcpMessage is the part of a DHCP message this client reads or writes.
type dhcpMessage struct {
	op      byte
	xid     uint32
	yiaddr  netip.Addr
	chaddr  [6]byte
	msgType byte
	mask    net.IPMask
	router  netip.Addr
	server  netip.Addr
	lease   time.Duration
	reqIP   netip.Addr
}

func (m *dhcpMessage) marshal() []byte {
	b := make([]byte, 240, 300)
	b[0] = m.op
	b[1], b[2] = 1, 6 // Ethernet, 6-byte addresses
	binary.BigEndian.PutUint32(b[4:], m.xid)
	binary.BigEndian.PutUint16(b[10:], 0x8000) // broadcast replies: no address yet
	copy(b[28:34], m.chaddr[:])
	binary.BigEndian.PutUint32(b[236:], dhcpMagic)
	b = append(b, optMessageType, 1, m.msgType)
	if m.reqIP.IsValid() {
		a := m.reqIP.As4()
		b = append(b, optRequestedIP, 4, a[0], a[1], a[2], a[3])
	}
	if m.server.IsValid() {
		a := m.server.As4()
		b = append(b, optServerID, 4, a[0], a[1], a[2], a[3])
	}
	b = append(b, optParamList, 3, optSubnetMask, optRouter, optLeaseTime, optEnd)
	return b
}

func parseDHCP(b []byte) (*dhcpMessage, error) {
	if len(b) < 240 || binary.BigEndian.Uint32(b[236:]) != dhcpMagic {
		return nil, fmt.Errorf("%w: not a DHCP message", ErrDHCP)
	}
	m := &dhcpMessage{op: b[0], xid: binary.BigEndian.Uint32(b[4:])}
	m.yiaddr = netip.AddrFrom4([4]byte(b[16:20]))
	copy(m.chaddr[:], b[28:34])
	opts := b[240:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == 0 { // pad
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || int(opts[1]) > len(opts)-2 {
			return nil, fmt.Errorf("%w: truncated option %d", ErrDHCP, code)
		}
		v := opts[2 : 2+int(opts[1])]
		switch {
		case code == optMessageType && len(v) == 1:
			m.msgType = v[0]
		case code == optSubnetMask && len(v) == 4:
			m.mask = net.IPMask(append([]byte(nil), v...))
		case code == optRouter && len(v) >= 4:
			m.router = netip.AddrFrom4([4]byte(v[:4]))
		case code == optServerID && len(v) == 4:
			m.server = netip.AddrFrom4([4]byte(v))
		case code == optLeaseTime && len(v) == 4:
			m.lease = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
		}
		opts = opts[2+len(v):]
	}
	return m, nil
}

// DHCP asks the link's DHCP server for an address (DISCOVER, OFFER,
// REQUEST, ACK; RFC 2131 4.4.1), configures it with its route and returns
// the lease. Build the stack with a zero Config.Address to use it.
func (st *Stack) DHCP(ctx context.Context) (*Lease, error) {
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("%w: endpoint: %s", ErrDHCP, terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: 68}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("%w: bind port 68: %s", ErrDHCP, terr)
	}
	conn := gonet.NewUDPConn(&wq, ep)
	defer conn.Close()
	var xidb [4]byte
	rand.Read(xidb[:])
	xid := binary.BigEndian.Uint32(xidb[:])
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

	exchange := func(req *dhcpMessage, want byte) (*dhcpMessage, error) {
		buf := make([]byte, 1500)
		for attempt := 0; attempt < 4; attempt++ {
			if _, err := conn.WriteTo(req.marshal(), bcast); err != nil {
				return nil, fmt.Errorf("%w: send: %v", ErrDHCP, err)
			}
			deadline := time.Now().Add(time.Second << attempt)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			conn.SetReadDeadline(deadline)
			for {
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					break // timeout: send again
				}
				m, err := parseDHCP(buf[:n])
				if err != nil || m.op != 2 || m.xid != xid || m.chaddr != req.chaddr {
					continue
				}
				if m.msgType == dhcpNak {
					return nil, fmt.Errorf("%w: server %v refused (NAK)", ErrDHCP, m.server)
				}
				if m.msgType == want {
					return m, nil
				}
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %v", ErrDHCP, ctx.Err())
			}
		}
		return nil, fmt.Errorf("%w: no answer", ErrDHCP)
	}
	mac := st.nic.MAC()
	offer, err := exchange(&dhcpMessage{op: 1, xid: xid, chaddr: mac, msgType: dhcpDiscover}, dhcpOffer)
	if err != nil {
		return nil, err
	}
	if !offer.yiaddr.Is4() || offer.yiaddr.IsUnspecified() || !offer.server.IsValid() {
		return nil, fmt.Errorf("%w: unusable offer (address %v, server %v)", ErrDHCP, offer.yiaddr, offer.server)
	}
	ack, err := exchange(&dhcpMessage{op: 1, xid: xid, chaddr: mac, msgType: dhcpRequest,
		reqIP: offer.yiaddr, server: offer.server}, dhcpAck)
	if err != nil {
		return nil, err
	}
	bits := 24
	if ack.mask != nil {
		if ones, size := ack.mask.Size(); size == 32 {
			bits = ones
		}
	}
	l := &Lease{Address: netip.PrefixFrom(ack.yiaddr, bits), Gateway: ack.router, Server: ack.server, Duration: ack.lease}
	if err := st.configure(l.Address, l.Gateway); err != nil {
		return nil, err
	}
	// the lease replaces the unspecified address and the promiscuity
	// DHCP needed
	st.s.RemoveAddress(nicID, header.IPv4Any)
	st.s.SetPromiscuousMode(nicID, false)
	st.s.SetSpoofing(nicID, false)
	return l, nil
}

// configure sets the stack's address and routes.
func (st *Stack) configure(addr netip.Prefix, gw netip.Addr) error {
	if !addr.Addr().Is4() {
		return fmt.Errorf("%w: address %v", ErrNotIPv4, addr)
	}
	if err := st.s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(addr.Addr().As4()), PrefixLen: addr.Bits()},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("netstack: add address %v: %s", addr, err)
	}
	subnet, err := tcpip.NewSubnet(tcpip.AddrFrom4(addr.Masked().Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(addr.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("netstack: subnet: %w", err)
	}
	routes := []tcpip.Route{{Destination: subnet, NIC: nicID}}
	if gw.IsValid() {
		if !gw.Is4() {
			return fmt.Errorf("%w: gateway %v", ErrNotIPv4, gw)
		}
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: nicID})
	}
	st.s.SetRouteTable(routes)
	st.cfg.Address, st.cfg.Gateway = addr, gw
	return nil
}
