package main

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// answeringPeer is a link whose far end answers ARP requests for one
// address; the fault switches make it silent or answer for someone else.
type answeringPeer struct {
	addr   netip.Addr
	hw     [6]byte
	silent bool
	wrong  bool
	queue  [][]byte
}

func (p *answeringPeer) Transmit(f []byte) error {
	if p.silent || len(f) < 42 {
		return nil
	}
	var sha [6]byte
	copy(sha[:], f[22:28])
	spa, _ := netip.AddrFromSlice(f[28:32])
	tpa, _ := netip.AddrFromSlice(f[38:42])
	if tpa != p.addr {
		return nil
	}
	from := p.addr
	if p.wrong {
		from = netip.MustParseAddr("10.0.2.3")
	}
	p.queue = append(p.queue, []byte{0, 0}) // noise first: a runt
	p.queue = append(p.queue, arpFrame(2, p.hw, sha, from, spa, sha))
	return nil
}

func (p *answeringPeer) Receive(f []byte) (int, bool, error) {
	if len(p.queue) == 0 {
		return 0, false, nil
	}
	n := copy(f, p.queue[0])
	p.queue = p.queue[1:]
	return n, true, nil
}

func TestARPProbe(t *testing.T) {
	us := netip.MustParseAddr("10.0.2.15")
	gw := netip.MustParseAddr("10.0.2.2")
	mac := [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	gwHW := [6]byte{0x52, 0x55, 10, 0, 2, 2}
	tests := []struct {
		name string
		peer *answeringPeer
		want error
	}{
		{"answered", &answeringPeer{addr: gw, hw: gwHW}, nil},
		{"silent peer", &answeringPeer{addr: gw, hw: gwHW, silent: true}, errNoReply},
		{"reply from another address", &answeringPeer{addr: gw, hw: gwHW, wrong: true}, errNoReply},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hw, err := arpProbe(tc.peer, mac, us, gw, 50*time.Millisecond)
			if !errors.Is(err, tc.want) {
				t.Fatalf("arpProbe = %v, want %v", err, tc.want)
			}
			if err == nil && hw != gwHW {
				t.Fatalf("hardware address %x, want %x", hw, gwHW)
			}
		})
	}
}
