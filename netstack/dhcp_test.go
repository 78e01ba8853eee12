package netstack

import (
	"errors"
	"net/netip"
	"testing"
)

func TestDHCPMessages(t *testing.T) {
	req := &dhcpMessage{op: 1, xid: 0xdeadbeef, chaddr: [6]byte{2, 0, 0, 0, 0, 1}, msgType: dhcpRequest,
		reqIP: netip.MustParseAddr("10.0.2.15"), server: netip.MustParseAddr("10.0.2.2")}
	b := req.marshal()
	got, err := parseDHCP(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.op != 1 || got.xid != req.xid || got.chaddr != req.chaddr || got.msgType != dhcpRequest || got.server != req.server {
		t.Fatalf("round trip: %+v", got)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", b[:100]},
		{"bad magic", append(append([]byte(nil), b[:236]...), 1, 2, 3, 4)},
		{"option longer than the message", append(append([]byte(nil), b[:240]...), optRouter, 40, 10, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseDHCP(tc.b); !errors.Is(err, ErrDHCP) {
				t.Fatalf("parseDHCP = %v, want ErrDHCP", err)
			}
		})
	}
}

func FuzzDHCP(f *testing.F) {
	f.Add((&dhcpMessage{op: 2, msgType: dhcpOffer}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		parseDHCP(b)
	})
}
