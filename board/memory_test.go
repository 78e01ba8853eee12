package board

import "testing"

// TestLoadEnd: the stick's segments may fill its RAM when the image
// windows lie outside it (the QEMU boards), and end below the lowest
// window inside it (the Mk II's boot payload at the top of the stick's
// RAM).
func TestLoadEnd(t *testing.T) {
	qemuRV := Memory{RAMStart: 0x80000000, RAMSize: 0x20000000, LoadStart: 0x80000000,
		StickImageBase: 0xb0000000, StickImageMax: 0x0fe00000, Stage0ImageBase: 0xac000000, Stage0ImageMax: 0x01000000}
	tests := []struct {
		name string
		mem  Memory
		want uint64
	}{
		{"windows outside the RAM", qemuRV, 0xa0000000},
		{"windows at the top of the RAM", Memory{RAMStart: 0x80000000, RAMSize: 0x1d000000, LoadStart: 0x80000000,
			Stage0ImageBase: 0x97000000, Stage0ImageMax: 0x380000, StickImageBase: 0x97380000, StickImageMax: 0x5c7ffc0}, 0x97000000},
		{"container alone inside", Memory{RAMStart: 0x80000000, RAMSize: 0x1d000000, LoadStart: 0x80000000,
			StickImageBase: 0x98000000, StickImageMax: 0x1000, Stage0ImageBase: 0xa0000000, Stage0ImageMax: 0x1000}, 0x98000000},
		{"empty windows (no directory)", Memory{RAMStart: 0x80000000, RAMSize: 0x1d000000, LoadStart: 0x80000000,
			StickImageBase: 0x9cffffc0, Stage0ImageBase: 0x9cffffc0}, 0x9d000000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.mem.LoadEnd(); got != tc.want {
				t.Errorf("LoadEnd = %#x, want %#x", got, tc.want)
			}
		})
	}
}
