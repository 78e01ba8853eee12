package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Link is a frame-level network interface: what a NIC driver offers.
type Link interface {
	Transmit(frame []byte) error
	Receive(frame []byte) (n int, ok bool, err error)
}

// errNoReply is returned when the peer did not answer in time.
var errNoReply = errors.New("no ARP reply")

// arpProbe asks who has target over link and returns the peer's hardware
// address: a link check of the NIC driver that needs no IP stack (RFC 826).
func arpProbe(link Link, mac [6]byte, src, target netip.Addr, timeout time.Duration) ([6]byte, error) {
	req := arpFrame(1, mac, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src, target, [6]byte{})
	if err := link.Transmit(req); err != nil {
		return [6]byte{}, err
	}
	buf := make([]byte, 1518)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, ok, err := link.Receive(buf)
		if err != nil {
			return [6]byte{}, err
		}
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		if hw, ok := parseARPReply(buf[:n], mac, src, target); ok {
			return hw, nil
		}
	}
	return [6]byte{}, errNoReply
}

// arpFrame builds an Ethernet frame carrying an ARP packet for IPv4 over
// Ethernet (RFC 826): op 1 request, 2 reply.
func arpFrame(op uint16, sha, dst [6]byte, spa, tpa netip.Addr, tha [6]byte) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], dst[:])
	copy(f[6:12], sha[:])
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1)      // HTYPE Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // PTYPE IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha[:])
	s4, t4 := spa.As4(), tpa.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tha[:])
	copy(a[24:28], t4[:])
	return f
}

// parseARPReply returns the sender hardware address of an ARP reply from
// target to us.
func parseARPReply(f []byte, mac [6]byte, us, target netip.Addr) (hw [6]byte, ok bool) {
	if len(f) < 14+28 || binary.BigEndian.Uint16(f[12:]) != 0x0806 {
		return hw, false
	}
	a := f[14:]
	u4, t4 := us.As4(), target.As4()
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 ||
		a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:]) != 2 ||
		!bytes.Equal(a[14:18], t4[:]) || !bytes.Equal(a[24:28], u4[:]) || !bytes.Equal(a[18:24], mac[:]) {
		return hw, false
	}
	copy(hw[:], a[8:14])
	return hw, true
}
