//go:build tamago && arm

// Package virt supports QEMU's arm "virt" machine with a Cortex-A7 in the
// secure world (qemu-system-arm -machine virt,secure=on -cpu cortex-a7): the
// USB armory Mk II's core on an emulated board, where teastick's tests boot
// the real image.
//
// Importing it wires the TamaGo runtime hooks: console output (PL011), the
// clock (ARM generic timer, 62.5 MHz under QEMU), the random source (a
// ChaCha20 DRBG seeded from virtio-rng, refusing to run without one), memory
// layout and exit (Arm semihosting, so a test build's exit status becomes
// QEMU's).
//
// This package is only meant to be used with `GOOS=tamago GOARCH=arm`.
package virt

import (
	"runtime/goos"
	"unsafe"

	"github.com/usbarmory/tamago/arm"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/armv7"
	"github.com/teastick/teastick/board/fdt"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/qemu/vmmio"
)

// Name identifies the board in the banner and in the stick's status.
const Name = "qemu-virt-arm"

// CPU is QEMU's fixed generic timer frequency for the virt machine.
const timerFreq = 62500000

// ARM is the processor.
var ARM = &arm.CPU{
	// never report a zero time before the timer runs
	TimerOffset: 1,
}

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return ARM.GetTime()
}

// Init sets up the processor, caches, timer, console and interrupt
// controller, early in runtime setup (after the world starts).
//
//go:linkname Init runtime/goos.Hwinit1
func Init() {
	// Read the board description before anything else touches RAM.
	loadDeviceTree()

	ARM.Init(vectorBase)
	armv7.AllowUnalignedAccess()
	goos.Exit = Exit

	ARM.EnableSMP()
	ARM.InitMMU()
	ARM.EnableCache()
	ARM.InitGenericTimers(0, timerFreq)

	UART0.Init()
	IRQs.Init()
}

// Devices probes the virtio-mmio slots and returns the devices present.
func Devices() []board.Device { return vmmio.Devices(virtioBus) }

// TimerFrequency returns the generic timer frequency in Hz.
func TimerFrequency() uint32 { return timerFreq }

// DeviceTree is the board description QEMU passed at DTB_BASE, or nil when
// there was none (DeviceTreeErr says why).
var (
	DeviceTree    *fdt.Tree
	DeviceTreeErr error
)

func loadDeviceTree() {
	window := unsafe.Slice((*byte)(mmio.Pointer(DTB_BASE)), DTB_SIZE)
	n, err := fdt.Size(window)
	if err != nil {
		DeviceTreeErr = err
		return
	}
	blob := make([]byte, n)
	copy(blob, window)
	DeviceTree, DeviceTreeErr = fdt.Parse(blob)
}
