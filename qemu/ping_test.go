package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPing pings the stick under QEMU. QEMU's user networking does not
// forward ICMP from the host, so the stick's NIC is connected to this test
// instead (QEMU's socket netdev): the test plays the box at 10.0.2.2,
// answers the stick's ARP, and sends ICMP echo requests frame by frame.
func TestPing(t *testing.T) {
	img := testImages(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	box := &wireBox{mac: net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x35, 0x02}, ip: net.IPv4(10, 0, 2, 2).To4(),
		replies: make(chan []byte, 16), stickMAC: make(chan net.HardwareAddr, 1)}
	go box.serve(t, ln)

	type result struct {
		rtts []time.Duration
		err  error
	}
	got := make(chan result, 1)
	m := Machine{Kernel: img.stick, NetSocket: ln.Addr().String(), Interact: func(line string) string {
		if strings.Contains(line, "https on :80") {
			go func() {
				var r result
				r.rtts, r.err = box.ping(net.IPv4(10, 0, 2, 15).To4(), 5)
				got <- r
			}()
		}
		return ""
	}}
	res, err := m.Run(context.Background(), 90*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("ping: %v; console:\n%s", r.err, res.Console)
		}
		t.Logf("5 echo replies from the stick, round trips %v", r.rtts)
	case <-time.After(20 * time.Second):
		t.Fatalf("the stick never said it serves; console:\n%s", res.Console)
	}
}

// wireBox is the far end of the stick's Ethernet link in TestPing.
type wireBox struct {
	mac      net.HardwareAddr
	ip       net.IP
	replies  chan []byte
	stickMAC chan net.HardwareAddr

	mu   sync.Mutex
	conn net.Conn
}

func (b *wireBox) send(frame []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return errors.New("QEMU has not connected")
	}
	// QEMU's socket netdev: a 4-byte big-endian length, then the frame.
	_, err := b.conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
	return err
}

func (b *wireBox) serve(t *testing.T, ln net.Listener) {
	conn, err := ln.Accept()
	if err != nil {
		return
	}
	b.mu.Lock()
	b.conn = conn
	b.mu.Unlock()
	defer conn.Close()
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(conn, frame); err != nil {
			return
		}
		if len(frame) < 14 {
			continue
		}
		switch binary.BigEndian.Uint16(frame[12:14]) {
		case 0x0806: // ARP
			arp := frame[14:]
			if len(arp) < 28 || !bytes.Equal(arp[24:28], b.ip) {
				continue
			}
			stick := net.HardwareAddr(bytes.Clone(arp[8:14]))
			switch binary.BigEndian.Uint16(arp[6:8]) {
			case 2: // the answer to the box's own request
				select {
				case b.stickMAC <- stick:
				default:
				}
			case 1: // the stick asks for the box
				b.send(arpFrame(2, b.mac, b.ip, stick, arp[14:18]))
			}
		case 0x0800: // IPv4
			ip := frame[14:]
			if len(ip) >= 28 && ip[9] == 1 && bytes.Equal(ip[16:20], b.ip) {
				ihl := int(ip[0]&0x0f) * 4
				if ihl >= 20 && len(ip) > ihl && ip[ihl] == 0 { // echo reply
					b.replies <- bytes.Clone(ip[ihl:])
				}
			}
		}
	}
}

// ping sends n ICMP echo requests to ip and checks each reply.
func (b *wireBox) ping(ip net.IP, n int) ([]time.Duration, error) {
	// Who has the stick's address? (As the box's kernel would ask.)
	if err := b.send(arpFrame(1, b.mac, b.ip, nil, ip)); err != nil {
		return nil, err
	}
	var stick net.HardwareAddr
	select {
	case stick = <-b.stickMAC:
	case <-time.After(5 * time.Second):
		return nil, errors.New("the stick did not answer ARP for its address")
	}
	var rtts []time.Duration
	for seq := 1; seq <= n; seq++ {
		payload := []byte(fmt.Sprintf("teastick ping %d", seq))
		icmp := []byte{8, 0, 0, 0, 0x74, 0x73, byte(seq >> 8), byte(seq)}
		icmp = append(icmp, payload...)
		binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
		ipHdr := []byte{0x45, 0, 0, 0, 0, byte(seq), 0, 0, 64, 1, 0, 0}
		binary.BigEndian.PutUint16(ipHdr[2:], uint16(20+len(icmp)))
		ipHdr = append(append(ipHdr, b.ip...), ip...)
		binary.BigEndian.PutUint16(ipHdr[10:], checksum(ipHdr))
		frame := append(append(ethernet(stick, b.mac, 0x0800), ipHdr...), icmp...)
		start := time.Now()
		if err := b.send(frame); err != nil {
			return rtts, err
		}
		select {
		case r := <-b.replies:
			rtts = append(rtts, time.Since(start).Round(time.Microsecond))
			if len(r) < 8 || r[4] != 0x74 || r[5] != 0x73 || int(binary.BigEndian.Uint16(r[6:8])) != seq || !bytes.Equal(r[8:], payload) {
				return rtts, fmt.Errorf("echo reply %d does not match the request: % x", seq, r)
			}
			if checksum(r) != 0 {
				return rtts, fmt.Errorf("echo reply %d has a bad checksum", seq)
			}
		case <-time.After(5 * time.Second):
			return rtts, fmt.Errorf("no echo reply to request %d", seq)
		}
	}
	return rtts, nil
}

// arpFrame is an ARP request (op 1, to broadcast) or reply (op 2) for
// IPv4 over Ethernet.
func arpFrame(op uint16, srcMAC net.HardwareAddr, srcIP net.IP, dstMAC net.HardwareAddr, dstIP net.IP) []byte {
	dst, target := dstMAC, dstMAC
	if op == 1 {
		dst, target = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make(net.HardwareAddr, 6)
	}
	f := ethernet(dst, srcMAC, 0x0806)
	f = binary.BigEndian.AppendUint16(f, 1)      // Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // IPv4
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, op)
	return append(append(append(append(f, srcMAC...), srcIP...), target...), dstIP...)
}

func ethernet(dst, src net.HardwareAddr, typ uint16) []byte {
	return binary.BigEndian.AppendUint16(append(append([]byte{}, dst...), src...), typ)
}

// checksum is the Internet checksum (RFC 1071); over data that carries
// its own checksum it is 0.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
