//go:build tamago && riscv64

// Package virtrv64 supports QEMU's riscv64 "virt" machine
// (qemu-system-riscv64 -machine virt -bios none): one RV64GC hart in
// machine mode, where teastick's tests boot the real image on the second
// architecture.
//
// Importing it wires the TamaGo runtime hooks: console output (NS16550A),
// the clock (CLINT mtime, 10 MHz), the random source (a ChaCha20 DRBG
// seeded from virtio-rng, refusing to run without one), memory layout and
// exit (the SiFive test device, so a test build's exit status becomes
// QEMU's).
//
// tamago v1.26.0 has no interrupt support on riscv64: the board takes no
// interrupts, and its drivers poll (RATIONALE.md).
//
// This package is only meant to be used with `GOOS=tamago GOARCH=riscv64`.
package virtrv64

import (
	"runtime/goos"
	_ "unsafe"

	"github.com/usbarmory/tamago/riscv64"
	"github.com/usbarmory/tamago/soc/sifive/clint"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/qemu/vmmio"
)

// Name identifies the board in the banner, the stick's status and its
// measured configuration.
const Name = "qemu-virt-riscv64"

// RV64 is the processor.
var RV64 = &riscv64.CPU{}

// CLINT is the core-local interruptor: the clock.
var CLINT = &clint.CLINT{Base: CLINT_BASE, RTCCLK: MTIME_FREQ}

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return CLINT.Nanotime()
}

// Init sets up the processor (trap vector) and the console, early in
// runtime setup (after the world starts).
//
//go:linkname Init runtime/goos.Hwinit1
func Init() {
	RV64.Init()
	goos.Exit = Exit
	goos.Idle = idle
	// never report a zero time before the timer runs
	CLINT.TimerOffset = 1
	UART0.Init()
}

// Devices probes the virtio-mmio slots and returns the devices present.
func Devices() []board.Device { return vmmio.Devices(virtioBus) }
