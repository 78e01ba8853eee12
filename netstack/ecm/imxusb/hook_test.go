package imxusb

import (
	"bytes"
	"log/slog"
	"math/bits"
	"testing"

	"github.com/teastick/teastick/netstack/ecm"
)

// tamagoModel is TEST CODE: the control flow of tamago v1.26.0's
// soc/nxp/usb handleSetup (setup.go) around a Setup hook, with the
// controller reduced to what each request does to it. Every request must
// get exactly one answer: a stall, a data stage, or a status stage.
type tamagoModel struct {
	address, config uint8
	toggles         int // data toggles reset by CLEAR_FEATURE
	starts          int // endpoint sets started by SET_CONFIGURATION
	hook            func(rt, req uint8, value, index, length uint16) ([]byte, bool, bool, error)
}

type answer struct {
	stall bool
	data  []byte
	acks  int
}

func (m *tamagoModel) request(p ecm.SetupPacket) answer {
	var a answer
	value := bits.ReverseBytes16(p.Value) // SetupData.swap
	in, ack, done, err := m.hook(p.RequestType, p.Request, value, p.Index, p.Length)
	if err != nil {
		a.stall = true
		return a
	} else if len(in) != 0 {
		a.data = in
	} else if ack {
		a.acks++
	}
	if done {
		return a
	}
	switch p.Request { // tamago's own handlers, on its swapped value
	case 1: // CLEAR_FEATURE
		if value == 0 {
			m.toggles++
			a.acks++
		} else {
			a.stall = true
		}
	case 5: // SET_ADDRESS
		m.address = uint8(value<<8 | value>>8)
		a.acks++
	case 9: // SET_CONFIGURATION
		if conf := uint8(value >> 8); conf != m.config {
			m.config = conf
			m.starts++
		}
		a.acks++
	default:
		a.data = []byte("tamago answered") // the hook let a request through
	}
	return a
}

func TestHookUnderTamago(t *testing.T) {
	stick, box := ecm.MACs([]byte("hook test"))
	f, err := ecm.New(ecm.Config{StickMAC: stick, HostMAC: box, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	resets := 0
	m := &tamagoModel{hook: func(rt, req uint8, value, index, length uint16) ([]byte, bool, bool, error) {
		return Answer(f, Packet(rt, req, value, index, length), func() { resets++; f.Reset() })
	}}
	dev, cfg := f.Descriptors()
	steps := []struct {
		name  string
		p     ecm.SetupPacket
		data  []byte
		stall bool
	}{
		{"device descriptor", ecm.SetupPacket{RequestType: 0x80, Request: 6, Value: 0x0100, Length: 64}, dev, false},
		{"SET_ADDRESS", ecm.SetupPacket{Request: 5, Value: 7}, nil, false},
		{"configuration", ecm.SetupPacket{RequestType: 0x80, Request: 6, Value: 0x0200, Length: 255}, cfg, false},
		{"string 4", ecm.SetupPacket{RequestType: 0x80, Request: 6, Value: 0x0304, Index: 0x0409, Length: 255}, nil, false},
		{"SET_CONFIGURATION", ecm.SetupPacket{Request: 9, Value: 1}, nil, false},
		{"SET_INTERFACE", ecm.SetupPacket{RequestType: 1, Request: 11, Value: 1, Index: 1}, nil, false},
		{"packet filter", ecm.SetupPacket{RequestType: 0x21, Request: 0x43, Value: 0x0e}, nil, false},
		{"CLEAR_FEATURE halt", ecm.SetupPacket{RequestType: 2, Request: 1, Index: ecm.EPBulkOut}, nil, false},
		{"GET_STATUS", ecm.SetupPacket{RequestType: 0x80, Length: 2}, []byte{0, 0}, false},
		{"unknown class request", ecm.SetupPacket{RequestType: 0x21, Request: 0x7f}, nil, true},
		{"SET_ETHERNET_MULTICAST_FILTERS", ecm.SetupPacket{RequestType: 0x21, Request: 0x40, Value: 1, Length: 6}, nil, true},
	}
	for _, s := range steps {
		a := m.request(s.p)
		answers := a.acks
		if a.stall {
			answers++
		}
		if a.data != nil {
			answers++
		}
		if answers != 1 || a.stall != s.stall {
			t.Fatalf("%s: %+v: want exactly one answer (stall %v)", s.name, a, s.stall)
		}
		if s.data != nil && !bytes.Equal(a.data, s.data) {
			t.Fatalf("%s: answered %x, want %x", s.name, a.data, s.data)
		}
	}
	if mac, _, _, _ := m.hook(0x80, 6, 0x0403, 0x0409, 255); len(mac) != 2+24 {
		t.Errorf("MAC string descriptor %x", mac)
	}
	if m.address != 7 || m.config != 1 || m.starts != 1 || m.toggles != 1 || resets != 1 {
		t.Fatalf("controller: address %d config %d starts %d toggles %d, resets %d", m.address, m.config, m.starts, m.toggles, resets)
	}
	if !f.Connected() {
		t.Fatal("the function is not in altsetting 1")
	}
}

// TestEndpointFunctions: the bulk IN function gives whole frames (the
// controller segments them and adds the ZLP: zlt), bulk OUT takes whole
// transfers and never stalls.
func TestEndpointFunctions(t *testing.T) {
	stick, box := ecm.MACs([]byte("hook test"))
	f, _ := ecm.New(ecm.Config{StickMAC: stick, HostMAC: box, Log: slog.New(slog.DiscardHandler)})
	for _, p := range []ecm.SetupPacket{{Request: 5, Value: 1}, {Request: 9, Value: 1}, {RequestType: 1, Request: 11, Value: 1, Index: 1}} {
		if _, err := f.Setup(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	fr := make([]byte, 1024)
	copy(fr, box[:])
	if err := f.Transmit(fr); err != nil {
		t.Fatal(err)
	}
	if got, err := bulkIn(f)(nil, nil); err != nil || len(got) != 1024 {
		t.Fatalf("bulk IN: %d bytes, %v", len(got), err)
	}
	if got, _ := bulkIn(f)(nil, nil); got != nil {
		t.Fatal("bulk IN with nothing queued")
	}
	pad := append(make([]byte, 1024), 0)
	if _, err := bulkOut(f)(pad, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bulkOut(f)(make([]byte, 3000), nil); err != nil {
		t.Fatal("an oversize transfer stalled the endpoint")
	}
	buf := make([]byte, 2048)
	if n, ok, _ := f.Receive(buf); !ok || n != 1025 {
		t.Fatalf("received %d %v", n, ok)
	}
	if f.Stats().Oversize != 1 {
		t.Fatal("oversize transfer not counted")
	}
	if n, _ := notify(f)(nil, nil); len(n) != 8 {
		t.Fatalf("first notification %x", n)
	}
	for _, e := range ecm.Endpoints() {
		if zlt(e) != (e.Address == ecm.EPBulkIn) {
			t.Errorf("endpoint %#x: zero-length termination %v", e.Address, zlt(e))
		}
	}
}
