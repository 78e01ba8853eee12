package qemu

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestGoCommandCrashed(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want bool
	}{
		{"crash in cmd/go", "panic: runtime error: index out of range\n\ngoroutine 31 [running]:\ncmd/go/internal/modload.UpdateGoModFromReqs(...)", true},
		{"compile error", "firmware/stick/main.go:3:1: syntax error", false},
		{"panic in our code at build time", "panic: boom\n\ngoroutine 1 [running]:\nmain.main()", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := goCommandCrashed([]byte(tc.out)); got != tc.want {
				t.Fatalf("goCommandCrashed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCheckImagesSlot: a container that fits its target's slot passes, one
// byte more is refused before QEMU would load it over what follows the
// slot (riscv64: its devicetree at 0xbfe00000).
func TestCheckImagesSlot(t *testing.T) {
	for _, target := range []Target{ARM, RISCV64} {
		for _, tc := range []struct {
			name string
			size int64
			want error
		}{
			{"fits", int64(target.StickImageMax), nil},
			{"one byte over", int64(target.StickImageMax) + 1, ErrImageTooLarge},
		} {
			t.Run(target.Name+"/"+tc.name, func(t *testing.T) {
				f := filepath.Join(t.TempDir(), "stick.img")
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(f, tc.size); err != nil { // sparse
					t.Fatal(err)
				}
				err := Machine{Target: &target, Kernel: "boot.elf", StickImage: f}.CheckImages()
				if !errors.Is(err, tc.want) {
					t.Fatalf("CheckImages of %d bytes: %v, want %v", tc.size, err, tc.want)
				}
			})
		}
	}
}

// TestRISCV64SlotBelowDevicetree: the riscv64 container slot ends where
// QEMU 7.2 puts its devicetree with -m 1G and more (0xbfe00000), above
// stage 0's own file, and holds more than the 65 MB image with four
// native actors (which filled all but 1.9 MB of the old 64 MiB slot).
func TestRISCV64SlotBelowDevicetree(t *testing.T) {
	const fdt = 0xbfe00000
	if end := RISCV64.StickImageAddr + RISCV64.StickImageMax; end != fdt {
		t.Errorf("the riscv64 slot ends at %#x, QEMU's devicetree is at %#x", end, fdt)
	}
	if RISCV64.Stage0ImageAddr+0x01000000 > RISCV64.StickImageAddr {
		t.Errorf("stage 0's file slot [%#x, +16 MiB) runs into the container at %#x", RISCV64.Stage0ImageAddr, RISCV64.StickImageAddr)
	}
	if RISCV64.StickImageMax < 128<<20 {
		t.Errorf("the riscv64 slot holds %d MiB: too small for native actors", RISCV64.StickImageMax>>20)
	}
}
