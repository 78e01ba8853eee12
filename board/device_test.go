package board

import "testing"

// TestDeviceNames: the banner and the net lines name virtio-mmio slots by
// slot and transport version, and SoC devices (Version 0) by name and
// address only, never as a virtio slot.
func TestDeviceNames(t *testing.T) {
	for _, tc := range []struct {
		d        Device
		str, nic string
	}{
		{Device{Slot: 31, Base: 0x0a003e00, ID: 1, Version: 2, Name: "net"}, "net@0xa003e00(slot 31, v2)", "virtio-net slot 31"},
		{Device{Slot: 0, Base: 0x10008000, ID: 1, Version: 1, Name: "net"}, "net@0x10008000(slot 0, v1)", "virtio-net slot 0"},
		{Device{Base: 0x02184000, Name: "usb1 cdc-ecm"}, "usb1 cdc-ecm@0x2184000", "usb1 cdc-ecm"},
		{Device{Name: "i.MX6UL-emulated"}, "i.MX6UL-emulated", "i.MX6UL-emulated"},
	} {
		if got := tc.d.String(); got != tc.str {
			t.Errorf("%+v.String() = %q, want %q", tc.d, got, tc.str)
		}
		if got := tc.d.NIC(); got != tc.nic {
			t.Errorf("%+v.NIC() = %q, want %q", tc.d, got, tc.nic)
		}
	}
}
