// Package netstack is the stick's TCP/IP: gVisor's tcpip stack (IPv4, ARP,
// ICMP, TCP, UDP) over a frame-level NIC, the stick's one Ethernet link to
// its box. A NIC driver only receives and transmits Ethernet frames; the
// stack sits on gVisor's channel link endpoint wrapped in its Ethernet
// endpoint, and a pump moves frames between the two.
//
// The same code runs on the host (tests join two stacks with an in-memory
// cable) and on the stick, where Socket backs the standard net package
// through net.SocketFunc so that net/http works unchanged.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// NIC is a network interface as its driver offers it: Ethernet frames in
// and out (no FCS), and its hardware address. Receive does not block: it
// reports whether a frame was waiting.
type NIC interface {
	Transmit(frame []byte) error
	Receive(buf []byte) (n int, ok bool, err error)
	MAC() [6]byte
}

// Config is the stick's address on its link.
type Config struct {
	// Address is the stick's address and prefix, e.g. 10.0.0.1/24. Zero:
	// no address until Stack.DHCP obtains one.
	Address netip.Prefix
	// Gateway, if valid, is the default route (the box).
	Gateway netip.Addr
	// MTU is the IP MTU (default 1500): frames are up to MTU+14 bytes.
	MTU uint32
	// Poll is how long the pump sleeps when the NIC has nothing
	// (default 200 µs).
	Poll time.Duration
	Log  *slog.Logger
}

// Defaults of the two links the stick knows.
var (
	// USBArmory is the USB armory convention: stick 10.0.0.1, box 10.0.0.2.
	USBArmory = Config{Address: netip.MustParsePrefix("10.0.0.1/24"), Gateway: netip.MustParseAddr("10.0.0.2")}
	// QEMUUser is QEMU user networking: guest 10.0.2.15, gateway 10.0.2.2.
	QEMUUser = Config{Address: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2")}
)

const nicID tcpip.NICID = 1

// queueLen is the depth of the stack's outgoing frame queue. A full queue
// drops frames, which TCP then retransmits after a timeout; the transmit
// goroutine drains it as fast as the NIC takes frames.
const queueLen = 4096

// ErrNotIPv4 is returned for addresses the stack does not serve.
var ErrNotIPv4 = errors.New("netstack: only IPv4 is supported")

// Stack is a running TCP/IP stack on one NIC.
type Stack struct {
	s   *stack.Stack
	ep  *channel.Endpoint
	nic NIC
	cfg Config
	log *slog.Logger

	dropped atomic.Uint64
}

// Dropped counts frames lost between the NIC and the stack: receive
// errors, runts, and frames the NIC refused.
func (st *Stack) Dropped() uint64 { return st.dropped.Load() }

// busy is an error a NIC returns when its transmit queue is full for now.
type busy interface{ Busy() bool }

// New builds a stack for nic with cfg's address and routes. Call Run to
// move frames.
func New(nic NIC, cfg Config) (*Stack, error) {
	if cfg.Address.IsValid() && !cfg.Address.Addr().Is4() {
		return nil, fmt.Errorf("%w: address %v", ErrNotIPv4, cfg.Address)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Microsecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	mac := nic.MAC()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	// the channel endpoint's MTU is the frame's: gVisor's Ethernet
	// endpoint takes the 14-byte header off it for IP
	ep := channel.New(queueLen, cfg.MTU+header.EthernetMinimumSize, tcpip.LinkAddress(mac[:]))
	if err := s.CreateNIC(nicID, ethernet.New(ep)); err != nil {
		return nil, fmt.Errorf("netstack: create NIC: %s", err)
	}
	st := &Stack{s: s, ep: ep, nic: nic, cfg: cfg, log: cfg.Log.With("component", "net")}
	if !cfg.Address.IsValid() {
		// no address yet (DHCP): send from 0.0.0.0, take every frame
		s.SetPromiscuousMode(nicID, true)
		s.SetSpoofing(nicID, true)
		if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
			Protocol:          ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: header.IPv4Any, PrefixLen: 0},
		}, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("netstack: add 0.0.0.0 for DHCP: %s", err)
		}
		s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})
		return st, nil
	}
	if err := st.configure(cfg.Address, cfg.Gateway); err != nil {
		return nil, err
	}
	return st, nil

}

// Run moves frames between the NIC and the stack until ctx ends: received
// frames are injected, the stack's outgoing frames transmitted. A NIC
// receive error is logged and counted, and the pump goes on.
func (st *Stack) Run(ctx context.Context) {
	go st.transmit(ctx)
	buf := make([]byte, int(st.cfg.MTU)+header.EthernetMinimumSize+4)
	for ctx.Err() == nil {
		n, ok, err := st.nic.Receive(buf)
		if err != nil {
			st.dropped.Add(1)
			st.log.Warn("receive", "err", err)
			continue
		}
		if !ok {
			time.Sleep(st.cfg.Poll)
			continue
		}
		if n < header.EthernetMinimumSize {
			st.dropped.Add(1)
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), buf[:n]...))})
		st.ep.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

func (st *Stack) transmit(ctx context.Context) {
	for {
		pkt := st.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		b := pkt.ToView().AsSlice()
		frame := append([]byte(nil), b...)
		pkt.DecRef()
		// a NIC whose ring is full gets the frame again shortly, rather
		// than have TCP wait for a retransmission timeout
		err := st.nic.Transmit(frame)
		for tries := 0; err != nil && isBusy(err) && tries < 1000 && ctx.Err() == nil; tries++ {
			time.Sleep(st.cfg.Poll)
			err = st.nic.Transmit(frame)
		}
		if err != nil {
			st.dropped.Add(1)
			st.log.Warn("transmit", "err", err)
		}
	}
}

// Close tears the stack down.
func (st *Stack) Close() {
	st.ep.Close()
	st.s.Close()
}

func isBusy(err error) bool {
	var b busy
	return errors.As(err, &b) && b.Busy()
}

func fullAddr(a netip.AddrPort) tcpip.FullAddress {
	fa := tcpip.FullAddress{NIC: nicID, Port: a.Port()}
	if a.Addr().IsValid() && !a.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFrom4(a.Addr().As4())
	}
	return fa
}

// ListenTCP listens on the stack's address (or addr's, when given).
func (st *Stack) ListenTCP(addr netip.AddrPort) (net.Listener, error) {
	if addr.Addr().IsValid() && !addr.Addr().Is4() {
		return nil, ErrNotIPv4
	}
	return gonet.ListenTCP(st.s, fullAddr(addr), ipv4.ProtocolNumber)
}

// DialTCP connects to addr.
func (st *Stack) DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	if !addr.Addr().Is4() {
		return nil, ErrNotIPv4
	}
	return gonet.DialContextTCP(ctx, st.s, fullAddr(addr), ipv4.ProtocolNumber)
}

// DialUDP opens a UDP socket bound to laddr and, if raddr is valid,
// connected to it.
func (st *Stack) DialUDP(laddr, raddr netip.AddrPort) (*gonet.UDPConn, error) {
	var l, r *tcpip.FullAddress
	if laddr.IsValid() {
		a := fullAddr(laddr)
		l = &a
	}
	if raddr.IsValid() {
		if !raddr.Addr().Is4() {
			return nil, ErrNotIPv4
		}
		a := fullAddr(raddr)
		r = &a
	}
	return gonet.DialUDP(st.s, l, r, ipv4.ProtocolNumber)
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		if v == nil {
			return netip.AddrPort{}
		}
		ip, _ := netip.AddrFromSlice(v.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(v.Port))
	case *net.UDPAddr:
		if v == nil {
			return netip.AddrPort{}
		}
		ip, _ := netip.AddrFromSlice(v.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(v.Port))
	}
	return netip.AddrPort{}
}

// Socket has the signature of tamago's net.SocketFunc: it returns a
// net.Listener, a net.Conn or a net.PacketConn for what the net package
// asks, so net.Listen, net.Dial and net/http use this stack.
func (st *Stack) Socket(ctx context.Context, network string, family, sotype int, laddr, raddr net.Addr) (any, error) {
	const sockStream, sockDgram = 1, 2
	switch {
	case sotype == sockStream && raddr == nil:
		return st.ListenTCP(addrPort(laddr))
	case sotype == sockStream:
		return st.DialTCP(ctx, addrPort(raddr))
	case sotype == sockDgram:
		return st.DialUDP(addrPort(laddr), addrPort(raddr))
	}
	return nil, fmt.Errorf("netstack: unsupported socket %s type %d", network, sotype)
}
