package ecm_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/teastick/teastick/netstack/ecm"
	"github.com/teastick/teastick/netstack/ecm/ecmtest"
)

func setup(rt, req uint8, value, index, length uint16) ecm.SetupPacket {
	return ecm.SetupPacket{RequestType: rt, Request: req, Value: value, Index: index, Length: length}
}

// frameTo builds an Ethernet frame of n bytes to dst: header, then a
// pattern that makes every byte position count.
func frameTo(dst [6]byte, n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = seed + byte(i*7)
	}
	copy(f, dst[:])
	copy(f[6:], []byte{2, 0, 0, 0, 0, 9})
	f[12], f[13] = 0x88, 0xb5 // IEEE 802 local experimental EtherType
	return f
}

func TestStandardRequests(t *testing.T) {
	f, h := enumerated(t, 0)
	tests := []struct {
		name  string
		p     ecm.SetupPacket
		want  []byte // nil: no data; stall: ErrStall
		stall bool
	}{
		{"GET_CONFIGURATION", setup(0x80, 8, 0, 0, 1), []byte{1}, false},
		{"GET_INTERFACE data", setup(0x81, 10, 0, 1, 1), []byte{1}, false},
		{"GET_INTERFACE comm", setup(0x81, 10, 0, 0, 1), []byte{0}, false},
		{"GET_INTERFACE 2", setup(0x81, 10, 0, 2, 1), nil, true},
		{"GET_STATUS device", setup(0x80, 0, 0, 0, 2), []byte{0, 0}, false},
		{"GET_STATUS interface", setup(0x81, 0, 0, 1, 2), []byte{0, 0}, false},
		{"GET_STATUS bulk IN", setup(0x82, 0, 0, ecm.EPBulkIn, 2), []byte{0, 0}, false},
		{"GET_STATUS endpoint 5", setup(0x82, 0, 0, 0x85, 2), nil, true},
		{"GET_DESCRIPTOR device cut to 8", setup(0x80, 6, 0x0100, 0, 8), nil, false},
		{"GET_DESCRIPTOR config 2", setup(0x80, 6, 0x0202, 0, 255), nil, true},
		{"GET_DESCRIPTOR string 9", setup(0x80, 6, 0x0309, 0x0409, 255), nil, true},
		{"GET_DESCRIPTOR string German", setup(0x80, 6, 0x0301, 0x0407, 255), nil, true},
		{"GET_DESCRIPTOR interface", setup(0x80, 6, 0x0400, 0, 9), nil, true},
		{"SET_CONFIGURATION 2", setup(0x00, 9, 2, 0, 0), nil, true},
		{"SET_INTERFACE data alt 2", setup(0x01, 11, 2, 1, 0), nil, true},
		{"SET_INTERFACE comm alt 1", setup(0x01, 11, 1, 0, 0), nil, true},
		{"SET_ADDRESS while configured", setup(0x00, 5, 9, 0, 0), nil, true},
		{"SET_FEATURE TEST_MODE", setup(0x00, 3, 2, 0x0400, 0), nil, true},
		{"vendor request", setup(0xc0, 1, 0, 0, 4), nil, true},
		{"GET_ETHERNET_STATISTIC", setup(0xa1, 0x44, 1, 0, 4), nil, true},
		{"SET_ETHERNET_MULTICAST_FILTERS", setup(0x21, 0x40, 1, 0, 6), nil, true},
		{"packet filter to the data interface", setup(0x21, 0x43, 0x0c, 1, 0), nil, true},
		{"packet filter reserved bits", setup(0x21, 0x43, 0x8c, 0, 0), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.Control(tc.p, nil)
			if tc.stall {
				if !errors.Is(err, ecm.ErrStall) {
					t.Fatalf("answered %x, %v; want a stall", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !bytes.Equal(got, tc.want) {
				t.Fatalf("got %x, want %x", got, tc.want)
			}
		})
	}
	if d, _ := h.Control(setup(0x80, 6, 0x0100, 0, 8), nil); len(d) != 8 {
		t.Errorf("device descriptor not cut to wLength 8: %d bytes", len(d))
	}
	// a stall leaves the state alone
	if !f.Connected() || f.Configuration() != 1 {
		t.Error("a refused request changed the state")
	}
}

func TestHaltAndClearFeature(t *testing.T) {
	f, h := enumerated(t, 0)
	_, box := ecm.MACs(testID)
	if _, err := h.Control(setup(0x02, 3, 0, ecm.EPBulkIn, 0), nil); err != nil { // SET_FEATURE halt
		t.Fatal(err)
	}
	if st, _ := h.Control(setup(0x82, 0, 0, ecm.EPBulkIn, 2), nil); !bytes.Equal(st, []byte{1, 0}) {
		t.Fatalf("GET_STATUS of a halted endpoint: %x", st)
	}
	f.Transmit(frameTo(box, 100, 1))
	if p := f.BulkIn(); p != nil {
		t.Fatal("a halted bulk IN endpoint sent a packet")
	}
	if _, err := h.Control(setup(0x02, 1, 0, ecm.EPBulkIn, 0), nil); err != nil { // CLEAR_FEATURE halt
		t.Fatal(err)
	}
	if p := f.BulkIn(); len(p) != 100 {
		t.Fatalf("after CLEAR_FEATURE: %d bytes", len(p))
	}
	// a half-received frame does not survive a cleared halt on bulk OUT
	if err := f.BulkOut(make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Control(setup(0x02, 1, 0, ecm.EPBulkOut, 0), nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Transmit(frameTo([6]byte{}, 60, 3)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, ok, _ := f.Receive(buf); !ok || n != 60 {
		t.Fatalf("frame after the cleared halt: %d %v", n, ok)
	}
	if f.Stats().Aborted != 1 {
		t.Errorf("aborted frames %d, want 1", f.Stats().Aborted)
	}
}

// TestNotifications: altsetting 1 raises NETWORK_CONNECTION (connected)
// and CONNECTION_SPEED_CHANGE; altsetting 0 disconnects.
func TestNotifications(t *testing.T) {
	_, h := enumerated(t, 0)
	ns, err := h.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].Code != 0x00 || ns[0].Value != 1 || ns[1].Code != 0x2a || len(ns[1].Data) != 8 {
		t.Fatalf("notifications after altsetting 1: %+v", ns)
	}
	if err := h.SetInterface(0); err != nil {
		t.Fatal(err)
	}
	ns, _ = h.Notifications()
	if len(ns) != 1 || ns[0].Code != 0 || ns[0].Value != 0 {
		t.Fatalf("notifications after altsetting 0: %+v", ns)
	}
}

// TestFramesFromHost sends frames around each multiple of 512 as Linux
// does (one pad byte, no ZLP) and as a host that sends ZLPs; the stick
// receives each frame, the pad byte kept after it.
func TestFramesFromHost(t *testing.T) {
	for _, zlp := range []bool{false, true} {
		name := map[bool]string{false: "linux pad", true: "zlp"}[zlp]
		t.Run(name, func(t *testing.T) {
			f, h := enumerated(t, 0)
			h.ZLP = zlp
			stick, _ := ecm.MACs(testID)
			buf := make([]byte, 2048)
			for _, n := range []int{14, 60, 511, 512, 513, 1023, 1024, 1025, 1513, 1514} {
				fr := frameTo(stick, n, byte(n))
				if err := h.Transmit(fr); err != nil {
					t.Fatal(err)
				}
				got, ok, err := f.Receive(buf)
				if err != nil || !ok {
					t.Fatalf("%d bytes: no frame (%v)", n, err)
				}
				want := fr
				if n%512 == 0 && !zlp {
					want = append(append([]byte(nil), fr...), 0)
				}
				if !bytes.Equal(buf[:got], want) {
					t.Fatalf("%d-byte frame arrived as %d bytes", n, got)
				}
			}
			c := h.Counts()
			if zlp && c.ZLPsOut != 2 || !zlp && c.PadsOut != 2 {
				t.Errorf("host counts %+v", c)
			}
		})
	}
}

// TestFramesToHost: frames around each multiple of 512 from the stick end
// with a short packet, or a ZLP when they are a multiple of 512.
func TestFramesToHost(t *testing.T) {
	f, h := enumerated(t, 0)
	_, box := ecm.MACs(testID)
	buf := make([]byte, 2048)
	for _, n := range []int{14, 511, 512, 513, 1023, 1024, 1025, 1514} {
		fr := frameTo(box, n, byte(n))
		if err := f.Transmit(fr); err != nil {
			t.Fatal(err)
		}
		before := h.Counts()
		got, ok, err := h.Receive(buf)
		if err != nil || !ok || !bytes.Equal(buf[:got], fr) {
			t.Fatalf("%d bytes: got %d %v %v", n, got, ok, err)
		}
		after := h.Counts()
		packets, zlps := after.InPackets-before.InPackets, after.ZLPsIn-before.ZLPsIn
		wantZLP := 0
		if n%512 == 0 {
			wantZLP = 1
		}
		if zlps != wantZLP || packets != n/512+1 {
			t.Errorf("%d bytes: %d packets, %d ZLPs", n, packets, zlps)
		}
	}
	if p := f.BulkIn(); p != nil {
		t.Errorf("a packet after the last frame: %d bytes", len(p))
	}
}

func TestOversizeAndRunts(t *testing.T) {
	f, h := enumerated(t, 0)
	stick, box := ecm.MACs(testID)
	// host to stick: 1535 bytes (three full packets and a short one)
	if err := h.Transmit(frameTo(stick, 1535, 1)); err != nil {
		t.Fatal(err)
	}
	if err := h.Transmit(frameTo(stick, 1515, 2)); err != nil {
		t.Fatal(err)
	}
	if err := h.Transmit(make([]byte, 13)); err != nil {
		t.Fatal(err)
	}
	if err := h.Transmit(frameTo(stick, 100, 4)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, ok, _ := f.Receive(buf); !ok || n != 100 {
		t.Fatalf("the frame after the refused ones: %d %v", n, ok)
	}
	if _, ok, _ := f.Receive(buf); ok {
		t.Fatal("an oversize or runt frame was delivered")
	}
	// stick to host
	if err := f.Transmit(frameTo(box, 1535, 5)); !errors.Is(err, ecm.ErrOversize) {
		t.Fatalf("1535-byte transmit: %v", err)
	}
	if err := f.Transmit(make([]byte, 10)); !errors.Is(err, ecm.ErrRunt) {
		t.Fatalf("10-byte transmit: %v", err)
	}
	s := f.Stats()
	if s.Oversize != 3 || s.Runts != 2 {
		t.Fatalf("oversize %d runts %d, want 3 and 2", s.Oversize, s.Runts)
	}
}

// TestAltsetting0BlocksTraffic: no frames move in altsetting 0.
func TestAltsetting0BlocksTraffic(t *testing.T) {
	f, h := enumerated(t, 0)
	stick, box := ecm.MACs(testID)
	if err := f.Transmit(frameTo(box, 100, 1)); err != nil { // queued, then flushed
		t.Fatal(err)
	}
	if err := h.SetInterface(0); err != nil {
		t.Fatal(err)
	}
	if p := f.BulkIn(); p != nil {
		t.Fatal("a frame queued before altsetting 0 was sent after it")
	}
	if err := f.Transmit(frameTo(box, 100, 2)); err != nil {
		t.Fatal(err)
	}
	if p := f.BulkIn(); p != nil {
		t.Fatal("bulk IN sent a packet in altsetting 0")
	}
	if err := h.Transmit(frameTo(stick, 100, 3)); !errors.Is(err, ecm.ErrStall) {
		t.Fatalf("bulk OUT in altsetting 0: %v, want a stall", err)
	}
	if _, ok, _ := f.Receive(make([]byte, 2048)); ok {
		t.Fatal("received a frame in altsetting 0")
	}
	if f.Stats().TxDropped != 1 {
		t.Errorf("TxDropped %d, want 1", f.Stats().TxDropped)
	}
	if err := h.SetInterface(1); err != nil {
		t.Fatal(err)
	}
	f.Transmit(frameTo(box, 100, 4))
	if p := f.BulkIn(); len(p) != 100 {
		t.Fatal("altsetting 1 again carries no frame")
	}
}

func TestPacketFilter(t *testing.T) {
	f, h := enumerated(t, 0)
	_, box := ecm.MACs(testID)
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast := [6]byte{0x01, 0x00, 0x5e, 0, 0, 1}
	other := [6]byte{0x02, 0, 0, 0, 0, 0x77}
	tests := []struct {
		filter uint16
		pass   map[[6]byte]bool
	}{
		{ecm.FilterBroadcast, map[[6]byte]bool{box: false, bcast: true, mcast: false, other: false}},
		{ecm.FilterDirected, map[[6]byte]bool{box: true, bcast: false, mcast: false, other: false}},
		{ecm.FilterAllMulticast, map[[6]byte]bool{box: false, bcast: false, mcast: true, other: false}},
		{ecm.FilterPromiscuous, map[[6]byte]bool{box: true, bcast: true, mcast: true, other: true}},
	}
	for _, tc := range tests {
		if err := h.SetFilter(tc.filter); err != nil {
			t.Fatal(err)
		}
		for dst, pass := range tc.pass {
			f.Transmit(frameTo(dst, 64, 1))
			if got := f.BulkIn() != nil; got != pass {
				t.Errorf("filter %#x, destination %x: passed %v", tc.filter, dst, got)
			}
		}
	}
}

// TestResetMidFrame: a bus reset in the middle of a frame in either
// direction loses that frame only; after re-enumeration frames flow.
func TestResetMidFrame(t *testing.T) {
	f, h := enumerated(t, 0)
	stick, box := ecm.MACs(testID)
	if err := h.SendPacket(frameTo(stick, 1024, 1)[:512]); err != nil {
		t.Fatal(err)
	}
	f.Transmit(frameTo(box, 1024, 2))
	if p := f.BulkIn(); len(p) != 512 {
		t.Fatal("first IN packet")
	}
	f.Reset()
	if f.Connected() || f.Configuration() != 0 {
		t.Fatal("still configured after a reset")
	}
	if f.Notification() != nil {
		t.Fatal("a notification survived the reset")
	}
	if _, err := h.Enumerate(8); err != nil {
		t.Fatal(err)
	}
	if p := f.BulkIn(); p != nil {
		t.Fatal("the rest of a frame from before the reset was sent")
	}
	if err := h.Transmit(frameTo(stick, 600, 3)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, ok, _ := f.Receive(buf)
	if !ok || !bytes.Equal(buf[:n], frameTo(stick, 600, 3)) {
		t.Fatalf("frame after the reset: %d bytes, %v", n, ok)
	}
	if f.Stats().Aborted != 1 {
		t.Errorf("aborted %d, want 1", f.Stats().Aborted)
	}
}

// TestQueues: a full receive queue NAKs the host (nothing lost); a full
// transmit queue says busy.
func TestQueues(t *testing.T) {
	f, h := enumerated(t, 4)
	stick, box := ecm.MACs(testID)
	for i := range 4 {
		if err := h.Transmit(frameTo(stick, 100, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.BulkOut(make([]byte, 100)); !errors.Is(err, ecm.ErrNAK) {
		t.Fatalf("fifth frame into a queue of 4: %v, want a NAK", err)
	}
	if f.OutReady() {
		t.Fatal("OutReady with a full queue")
	}
	for i := range 4 {
		if err := f.Transmit(frameTo(box, 100, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	err := f.Transmit(frameTo(box, 100, 9))
	var busy interface{ Busy() bool }
	if !errors.As(err, &busy) || !busy.Busy() {
		t.Fatalf("transmit into a full queue: %v, want busy", err)
	}
}

// faultyHost is FAULT INJECTION: a host sending random and malformed
// setup packets, and bulk packets of any length, between the proper
// enumeration steps. Nothing may panic, and the function must still
// enumerate and carry a frame afterwards.
func TestFaultyHost(t *testing.T) {
	f := newFunction(t, 0)
	h := ecmtest.NewHost(f)
	rng := rand.New(rand.NewPCG(17, 2702))
	stalls := 0
	for range 20000 {
		var b [8]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		// bias toward the requests the function knows
		if rng.IntN(2) == 0 {
			b[1] = byte(rng.IntN(12))
			b[0] &= 0xe3
		}
		p, err := ecm.ParseSetup(b[:])
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if !p.In() {
			data = make([]byte, rng.IntN(64))
		}
		if _, err := f.Setup(p, data); err != nil {
			if !errors.Is(err, ecm.ErrStall) {
				t.Fatalf("setup %x: %v is not a stall", b, err)
			}
			stalls++
		}
		pkt := make([]byte, rng.IntN(1100))
		f.BulkOut(pkt)
		f.BulkIn()
		f.Notification()
		f.Receive(make([]byte, rng.IntN(2000)))
	}
	if _, err := ecm.ParseSetup(make([]byte, 7)); !errors.Is(err, ecm.ErrStall) {
		t.Errorf("a 7-byte setup packet: %v", err)
	}
	if stalls == 0 || f.Stats().Stalls == 0 {
		t.Fatal("no request was refused")
	}
	f.Reset()
	if _, err := h.Enumerate(3); err != nil {
		t.Fatalf("enumeration after the garbage: %v", err)
	}
	stick, _ := ecm.MACs(testID)
	// short and oversized bulk packets: a 600-byte packet is babble and
	// loses the frame in progress
	f.BulkOut(make([]byte, 512))
	f.BulkOut(make([]byte, 600))
	if err := h.Transmit(frameTo(stick, 700, 1)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, ok, _ := f.Receive(buf)
	if !ok || !bytes.Equal(buf[:n], frameTo(stick, 700, 1)) {
		t.Fatalf("frame after babble: %d %v", n, ok)
	}
	if f.Stats().Babble == 0 {
		t.Error("babble not counted")
	}
}

// TestSetupAnswersAreCopies: a controller may write into the buffer it is
// handed (tamago DMA-copies it); the next host must still read the
// function's descriptors.
func TestSetupAnswersAreCopies(t *testing.T) {
	f, h := enumerated(t, 0)
	d, err := h.Control(setup(0x80, 6, 0x0100, 0, 18), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range d {
		d[i] = 0xff
	}
	dev, _ := f.Descriptors()
	if again, _ := h.Control(setup(0x80, 6, 0x0100, 0, 18), nil); !bytes.Equal(again, dev) || dev[0] != 18 {
		t.Fatalf("device descriptor after the caller wrote into an answer: %x", again)
	}
}
