package ecm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/netstack"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ecm"
	"github.com/teastick/teastick/netstack/ecm/ecmtest"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

var quiet = slog.New(slog.DiscardHandler)

// usbLink is the stick's gVisor stack on the ECM function, at
// netstack.USBArmory's address, and the box's stack (10.0.0.2) on the
// simulated host's end of the cable.
type usbLink struct {
	f          *ecm.Function
	h          *ecmtest.Host
	stick, box *netstack.Stack
}

func newUSBLink(t testing.TB) *usbLink {
	t.Helper()
	f, h := enumerated(t, 0)
	cfg := netstack.USBArmory
	cfg.Poll, cfg.Log = 50*time.Microsecond, quiet
	stick, err := netstack.New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	box, err := netstack.New(h, netstack.Config{Address: netip.MustParsePrefix("10.0.0.2/24"), Poll: 50 * time.Microsecond, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go stick.Run(ctx)
	go box.Run(ctx)
	t.Cleanup(func() { cancel(); stick.Close(); box.Close() })
	return &usbLink{f: f, h: h, stick: stick, box: box}
}

// httpVia is an HTTP client whose connections go through st.
func httpVia(st *netstack.Stack, tlsCfg *tls.Config) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: tlsCfg,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return st.DialTCP(ctx, ap)
		},
	}}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// serveBody serves body on st's port 80.
func serveBody(t testing.TB, st *netstack.Stack, body []byte) {
	t.Helper()
	l, err := st.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// Raw frames: the test plays the box's kernel, frame by frame.

var (
	stickIP = [4]byte{10, 0, 0, 1}
	boxIP   = [4]byte{10, 0, 0, 2}
)

func arpFrame(op uint16, srcMAC [6]byte, srcIP [4]byte, dstMAC [6]byte, dstIP [4]byte, ethDst [6]byte) []byte {
	b := make([]byte, 42)
	copy(b, ethDst[:])
	copy(b[6:], srcMAC[:])
	b[12], b[13] = 0x08, 0x06
	copy(b[14:], []byte{0, 1, 8, 0, 6, 4, 0, byte(op)})
	copy(b[22:], srcMAC[:])
	copy(b[28:], srcIP[:])
	copy(b[32:], dstMAC[:])
	copy(b[38:], dstIP[:])
	return b
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// echoFrame is an ICMP echo request of exactly n bytes of Ethernet frame.
func echoFrame(dst, src [6]byte, seq uint16, n int) []byte {
	b := make([]byte, n)
	copy(b, dst[:])
	copy(b[6:], src[:])
	b[12], b[13] = 0x08, 0x00
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	binary.BigEndian.PutUint16(ip[4:], seq)
	ip[8], ip[9] = 64, 1
	copy(ip[12:], boxIP[:])
	copy(ip[16:], stickIP[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	icmp := b[34:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:], 0x7ea5)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	for i := 8; i < len(icmp); i++ {
		icmp[i] = byte(i + int(seq))
	}
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return b
}

// TestARPAndPingOverUSB: the stick's stack answers ARP and ICMP echo
// requests of every frame size around the multiples of 512 through the
// function, with Linux's framing (pad byte) toward it and ZLPs back; a
// 1535-byte frame is refused and counted.
func TestARPAndPingOverUSB(t *testing.T) {
	f, h := enumerated(t, 0)
	cfg := netstack.USBArmory
	cfg.Poll, cfg.Log = 50*time.Microsecond, quiet
	st, err := netstack.New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Run(ctx)
	defer st.Close()
	stickMAC, boxMAC := f.MAC(), h.MAC()
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	buf := make([]byte, 2048)
	// next returns the next frame from the stick, answering its ARP
	// requests for the box on the way.
	next := func(what string) []byte {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, ok, err := h.Receive(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			fr := append([]byte(nil), buf[:n]...)
			if fr[12] == 0x08 && fr[13] == 0x06 && fr[21] == 1 && bytes.Equal(fr[38:42], boxIP[:]) && what != "arp" {
				h.Transmit(arpFrame(2, boxMAC, boxIP, stickMAC, stickIP, stickMAC))
				continue
			}
			return fr
		}
		t.Fatalf("no %s from the stick", what)
		return nil
	}

	if err := h.Transmit(arpFrame(1, boxMAC, boxIP, [6]byte{}, stickIP, bcast)); err != nil {
		t.Fatal(err)
	}
	r := next("arp")
	if r[12] != 0x08 || r[13] != 0x06 || r[21] != 2 || !bytes.Equal(r[22:28], stickMAC[:]) || !bytes.Equal(r[28:32], stickIP[:]) {
		t.Fatalf("ARP reply %x", r)
	}
	before := h.Counts()
	for i, n := range []int{60, 511, 512, 513, 1023, 1024, 1025, 1514} {
		seq := uint16(i + 1)
		req := echoFrame(stickMAC, boxMAC, seq, n)
		if err := h.Transmit(req); err != nil {
			t.Fatal(err)
		}
		rep := next("echo reply")
		if len(rep) != n || rep[34] != 0 || binary.BigEndian.Uint16(rep[40:]) != seq || !bytes.Equal(rep[42:], req[42:]) {
			t.Fatalf("%d-byte echo: reply of %d bytes %x", n, len(rep), rep[:min(len(rep), 48)])
		}
		if checksum(rep[34:]) != 0 || checksum(rep[14:34]) != 0 {
			t.Fatalf("%d-byte echo: reply checksum", n)
		}
	}
	c := h.Counts()
	if c.PadsOut-before.PadsOut != 2 || c.ZLPsIn-before.ZLPsIn != 2 {
		t.Errorf("pads sent %d, ZLPs received %d; want 2 and 2", c.PadsOut-before.PadsOut, c.ZLPsIn-before.ZLPsIn)
	}
	// oversize toward the stick: refused, counted, no reply
	if err := h.Transmit(echoFrame(stickMAC, boxMAC, 99, 1535)); err != nil {
		t.Fatal(err)
	}
	if err := h.Transmit(echoFrame(stickMAC, boxMAC, 100, 100)); err != nil {
		t.Fatal(err)
	}
	if rep := next("echo reply"); binary.BigEndian.Uint16(rep[40:]) != 100 {
		t.Fatalf("reply to %d, not to the echo after the oversize frame", binary.BigEndian.Uint16(rep[40:]))
	}
	if f.Stats().Oversize != 1 {
		t.Fatalf("oversize %d, want 1", f.Stats().Oversize)
	}
}

// TestTCPOverUSB carries an HTTP body both ways between the two stacks.
func TestTCPOverUSB(t *testing.T) {
	l := newUSBLink(t)
	body := pattern(1 << 20)
	serveBody(t, l.stick, body)
	resp, err := httpVia(l.box, nil).Get("http://10.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(body) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	// the box uploads: the stick dials a server on the box
	ln, err := l.box.ListenTCP(netip.MustParseAddrPort("10.0.0.2:9000"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write(body)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := l.stick.DialTCP(ctx, netip.MustParseAddrPort("10.0.0.2:9000"))
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("upload: %d bytes, %v", len(got), err)
	}
	s := l.f.Stats()
	if s.RxFrames == 0 || s.TxFrames == 0 || s.Oversize+s.Runts+s.RxDropped+s.Babble != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestHTTPSAPIOverUSB: the stick's real core serves its HTTPS API over the
// USB link, and the box reaches it with the channel key pinned.
func TestHTTPSAPIOverUSB(t *testing.T) {
	l := newUSBLink(t)
	s, err := core.New(core.Config{Version: "test", Board: "usb-test", NotMeasured: errors.New("test: no TPM")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tlsCfg, err := channel.ServerConfig(s.ChannelKey())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := l.stick.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 443))
	if err != nil {
		t.Fatal(err)
	}
	srv := s.Server(s.Handler())
	go srv.Serve(tls.NewListener(ln, tlsCfg))
	defer srv.Close()
	resp, err := httpVia(l.box, channel.ClientConfig(s.ChannelDigest())).Get("https://10.0.0.1:443/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st core.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	digest := s.ChannelDigest()
	if st.Board != "usb-test" || st.ChannelKey != hex.EncodeToString(digest[:]) || st.Measured {
		t.Fatalf("status %+v", st)
	}
}

// relay forwards each connection accepted on ln to addr: the box's kubo
// reached through the box's end of the USB link (kubo itself listens on
// the host's loopback).
func relay(t testing.TB, ln net.Listener, addr string) {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				k, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer k.Close()
				go func() { io.Copy(k, c); k.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, k)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

// kuboOnBox starts a real kubo and serves its gateway at
// http://10.0.0.2:8080 on the box's stack.
func kuboOnBox(t testing.TB, box *netstack.Stack) *kubotest.Node {
	t.Helper()
	node := kubotest.Start(t)
	ln, err := box.ListenTCP(netip.MustParseAddrPort("10.0.0.2:8080"))
	if err != nil {
		t.Fatal(err)
	}
	relay(t, ln, node.Gateway[len("http://"):])
	return node
}

// TestVerifiedFetchOverUSB: the stick fetches content from a real kubo
// through the USB link, every block verified.
func TestVerifiedFetchOverUSB(t *testing.T) {
	l := newUSBLink(t)
	node := kuboOnBox(t, l.box)
	data := pattern(3<<20 + 12345)
	root := node.Publish(t, data)
	for _, car := range []bool{false, true} {
		cl := &ipfs.Client{Gateway: "http://10.0.0.2:8080", HTTP: httpVia(l.stick, nil), CAR: car, Log: quiet}
		got, err := cl.Fetch(context.Background(), root)
		if err != nil {
			t.Fatalf("CAR %v: %v", car, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("CAR %v: %d bytes differ from the %d published", car, len(got), len(data))
		}
	}
}
