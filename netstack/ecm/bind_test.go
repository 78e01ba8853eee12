package ecm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/teastick/teastick/netstack/ecm"
	"github.com/teastick/teastick/netstack/ecm/ecmtest"
)

var testID = []byte("test stick 0001")

func newFunction(t testing.TB, queue int) *ecm.Function {
	t.Helper()
	stick, box := ecm.MACs(testID)
	f, err := ecm.New(ecm.Config{StickMAC: stick, HostMAC: box, Serial: "TS0001", Queue: queue, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// enumerated is a function a simulated Linux host has enumerated and
// bound, data interface in altsetting 1.
func enumerated(t testing.TB, queue int) (*ecm.Function, *ecmtest.Host) {
	t.Helper()
	f := newFunction(t, queue)
	h := ecmtest.NewHost(f)
	if _, err := h.Enumerate(7); err != nil {
		t.Fatal(err)
	}
	return f, h
}

func TestMACs(t *testing.T) {
	stick, box := ecm.MACs(testID)
	sum := sha256.Sum256(append([]byte("teastick usb mac"), testID...))
	if want := [6]byte{0x1e, 0xa5, 0x71, sum[0], sum[1], sum[2]}; stick != want {
		t.Errorf("stick MAC %x, want %x", stick, want)
	}
	if want := [6]byte{0x1e, 0xa5, 0x70, sum[0], sum[1], sum[2]}; box != want {
		t.Errorf("box MAC %x, want %x", box, want)
	}
	for _, m := range [][6]byte{stick, box} {
		if m[0]&0x02 == 0 || m[0]&0x01 != 0 {
			t.Errorf("%x is not a locally administered unicast address", m)
		}
	}
	if s2, _ := ecm.MACs([]byte("test stick 0002")); s2 == stick {
		t.Error("two sticks derive the same MAC")
	}
	if ecm.MACString([6]byte{0x1e, 0xa5, 0x70, 0xab, 0xcd, 0x0f}) != "1EA570ABCD0F" {
		t.Error("MACString is not 12 upper-case hex digits")
	}
}

// TestLinuxBinds enumerates the function as Linux does and checks every
// binding rule (ecmtest.LinuxBind follows cdc_ether.c and usbnet.c).
func TestLinuxBinds(t *testing.T) {
	f := newFunction(t, 0)
	h := ecmtest.NewHost(f)
	b, err := h.Enumerate(7)
	if err != nil {
		t.Fatal(err)
	}
	_, box := ecm.MACs(testID)
	if b.MAC != box || b.MACString != ecm.MACString(box) {
		t.Errorf("iMACAddress %q (%x), want the box MAC %x", b.MACString, b.MAC, box)
	}
	if b.Status == nil || b.Status.Address != ecm.EPNotify {
		t.Errorf("notification endpoint not usable by usbnet: %+v", b.Status)
	}
	if b.In.Address != ecm.EPBulkIn || b.Out.Address != ecm.EPBulkOut || b.In.MaxPacket != 512 || b.Out.MaxPacket != 512 {
		t.Errorf("bulk endpoints %+v %+v", b.In, b.Out)
	}
	dev, _ := f.Descriptors()
	if binary.LittleEndian.Uint16(dev[8:]) != 0x1209 || binary.LittleEndian.Uint16(dev[10:]) != 0x2702 {
		t.Errorf("VID:PID %x", dev[8:12])
	}
	if dev[4] != 0xef || dev[5] != 0x02 || dev[6] != 0x01 {
		t.Errorf("device class %x: a device with an IAD says EF/02/01", dev[4:7])
	}
	for i, want := range map[uint8]string{dev[14]: "teastick", dev[15]: "teastick USB Ethernet", dev[16]: "TS0001"} {
		if s, err := h.String(i); err != nil || s != want {
			t.Errorf("string %d: %q %v, want %q", i, s, err, want)
		}
	}
	// ecm.Endpoints, what a controller shell programs, is what the
	// configuration descriptor announces
	_, cfgBytes := f.Descriptors()
	cfg, _ := ecmtest.ParseConfig(cfgBytes)
	var announced []ecm.Endpoint
	for _, n := range []uint8{0, 1} {
		for _, alt := range cfg.Interfaces[n] {
			for _, e := range alt.Endpoints {
				announced = append(announced, ecm.Endpoint{Address: e.Address, Attributes: e.Attributes, MaxPacketSize: e.MaxPacket, Interval: e.Interval})
			}
		}
	}
	if fmt.Sprint(announced) != fmt.Sprint(ecm.Endpoints()) {
		t.Errorf("descriptor endpoints %v, ecm.Endpoints %v", announced, ecm.Endpoints())
	}
	q, err := h.GetDescriptor(6, 0, 0, 10)
	if err != nil || len(q) != 10 || q[1] != 6 || !bytes.Equal(q[2:8], dev[2:8]) {
		t.Errorf("device qualifier %x: %v", q, err)
	}
	other, err := h.GetDescriptor(7, 0, 0, 255)
	if err != nil || other[1] != 7 {
		t.Fatalf("other speed configuration %x: %v", other, err)
	}
	other[1] = 2 // parse as a configuration: full-speed bulk packets are 64
	oc, err := ecmtest.ParseConfig(other)
	if err != nil || oc.Interfaces[1][1].Endpoints[0].MaxPacket != 64 {
		t.Errorf("other speed configuration: %v", err)
	}
}

// TestLinuxRefuses checks that LinuxBind refuses descriptor sets that
// break each rule: the binding test can fail.
func TestLinuxRefuses(t *testing.T) {
	f := newFunction(t, 0)
	_, good := f.Descriptors()
	// offsets in the configuration set (descriptor.go's order)
	const (
		iad    = 9
		comm   = iad + 8
		header = comm + 9
		union  = header + 5
		ether  = union + 5
		notify = ether + 13
		data0  = notify + 7
		data1  = data0 + 9
		bulkIn = data1 + 9
	)
	mac := func(s string) func(uint8) (string, error) {
		return func(uint8) (string, error) { return s, nil }
	}
	okMAC := mac(ecm.MACString([6]byte{0x1e, 0xa5, 0x70, 1, 2, 3}))
	tests := []struct {
		name string
		edit func(b []byte) []byte
		str  func(uint8) (string, error)
	}{
		{"no header", func(b []byte) []byte { b[header+2] = 0x01; return b }, okMAC},
		{"no union", func(b []byte) []byte { b[union+2] = 0x01; return b }, okMAC},
		{"no ether", func(b []byte) []byte { b[ether+2] = 0x01; return b }, okMAC},
		{"segment 1500", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[ether+8:], 1500); return b }, okMAC},
		{"lower-case MAC", func(b []byte) []byte { return b }, mac("1ea570010203")},
		{"11-digit MAC", func(b []byte) []byte { return b }, mac("1EA57001020")},
		{"data alt 0 not class 0x0A", func(b []byte) []byte { b[data0+5] = 0xff; return b }, okMAC},
		{"data alt 1 not class 0x0A", func(b []byte) []byte { b[data1+5] = 0xff; return b }, okMAC},
		{"bulk IN is interrupt", func(b []byte) []byte { b[bulkIn+3] = 3; return b }, okMAC},
		{"no IAD", func(b []byte) []byte { b[iad+4] = 0xff; return b }, okMAC},
		{"wTotalLength short", func(b []byte) []byte { return b[:len(b)-1] }, okMAC},
		{"union to a missing interface", func(b []byte) []byte { b[union+4] = 5; return b }, okMAC},
		{"comm not subclass ECM", func(b []byte) []byte { b[comm+6] = 0x02; return b }, okMAC},
	}
	if _, err := bind(good, okMAC); err != nil {
		t.Fatalf("the function's own descriptors: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := bind(tc.edit(append([]byte(nil), good...)), tc.str); !errors.Is(err, ecmtest.ErrBind) {
				t.Fatalf("bound anyway (%v)", err)
			}
		})
	}
}

func bind(cfg []byte, str func(uint8) (string, error)) (*ecmtest.Binding, error) {
	c, err := ecmtest.ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return ecmtest.LinuxBind(c, str)
}
