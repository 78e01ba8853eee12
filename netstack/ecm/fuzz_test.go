package ecm_test

import (
	"errors"
	"testing"

	"github.com/teastick/teastick/netstack/ecm"
	"github.com/teastick/teastick/netstack/ecm/ecmtest"
)

// FuzzSetup feeds a sequence of setup packets (8 bytes each) to a
// function: no panic, every refusal is a stall, and an IN answer is never
// longer than wLength.
func FuzzSetup(f *testing.F) {
	f.Add(ecm.SetupPacket{RequestType: 0x80, Request: 6, Value: 0x0100, Length: 64}.Bytes())
	f.Add(append(append(ecm.SetupPacket{Request: 5, Value: 3}.Bytes(), ecm.SetupPacket{Request: 9, Value: 1}.Bytes()...),
		ecm.SetupPacket{RequestType: 1, Request: 11, Value: 1, Index: 1}.Bytes()...))
	f.Add(ecm.SetupPacket{RequestType: 0x21, Request: 0x43, Value: 0x0e}.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		fn := newFunction(t, 4)
		for len(b) >= 8 {
			p, err := ecm.ParseSetup(b[:8])
			if err != nil {
				t.Fatal(err)
			}
			b = b[8:]
			in, err := fn.Setup(p, b)
			if err != nil && !errors.Is(err, ecm.ErrStall) {
				t.Fatalf("%+v: %v", p, err)
			}
			if len(in) > int(p.Length) {
				t.Fatalf("%+v: %d bytes answered", p, len(in))
			}
			fn.Notification()
		}
		if _, err := ecm.ParseSetup(b); len(b) != 8 && err == nil {
			t.Fatal("parsed a setup packet that is not 8 bytes")
		}
	})
}

// FuzzBulkOut splits the input into bulk OUT packets (a length byte, then
// that many bytes, up to 2*255) on an enumerated function: no panic, no
// frame delivered over MaxFrame or under 14 bytes, and a proper frame
// still arrives afterwards.
func FuzzBulkOut(f *testing.F) {
	f.Add([]byte{255, 1, 2, 3})
	f.Add(append([]byte{0}, make([]byte, 600)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		fn, h := enumerated(t, 8)
		buf := make([]byte, 4096)
		for len(b) > 0 {
			n := int(b[0]) * 2
			b = b[1:]
			n = min(n, len(b))
			fn.BulkOut(b[:n])
			b = b[n:]
			for {
				got, ok, err := fn.Receive(buf)
				if err != nil || !ok {
					break
				}
				if got < 14 || got > ecm.MaxFrame {
					t.Fatalf("delivered a frame of %d bytes", got)
				}
			}
		}
		fn.BulkOut(nil) // end whatever frame is in progress
		for {
			if _, ok, _ := fn.Receive(buf); !ok {
				break
			}
		}
		stick, _ := ecm.MACs(testID)
		if err := h.Transmit(frameTo(stick, 100, 1)); err != nil {
			t.Fatal(err)
		}
		if n, ok, _ := fn.Receive(buf); !ok || n != 100 {
			t.Fatalf("frame after the fuzz: %d %v", n, ok)
		}
	})
}

// FuzzLinuxBind runs the host's bind checks on arbitrary descriptor sets:
// the simulated host must not panic on what a device sends either.
func FuzzLinuxBind(f *testing.F) {
	_, cfg := newFunction(f, 0).Descriptors()
	f.Add(cfg)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ecmtest.ParseConfig(b)
		if err != nil {
			return
		}
		ecmtest.LinuxBind(c, func(uint8) (string, error) { return "1EA570000000", nil })
	})
}
