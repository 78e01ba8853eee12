//go:build tamago && arm

// Package armv7 is what every ARMv7-A board does the same way below the
// Go runtime: stage 0's jump into the stick (MMU off, caches cleaned),
// the alignment check turned off, and the Arm semihosting exit QEMU
// takes. One copy for the QEMU arm virt board and the USB armory Mk II.
package armv7

import (
	"unsafe"

	"github.com/usbarmory/tamago/arm"
)

func svc()
func exec()

// AllowUnalignedAccess turns off the processor's alignment check, as it
// is at reset: the stick's boards call it at boot so that translated
// actors (runtime/native/translate, wordAccesses) read and write linear
// memory's words in one access at any address, whatever a boot loader
// left set.
func AllowUnalignedAccess()

func semihosting(op uint32, arg uint32) uint32
func halt()

// read by exec
var (
	entry   uint32
	handoff uint32
)

// Jump starts a loaded image (stage 0 starting the stick): the supervisor
// call vector is pointed at exec, the data cache is cleaned to memory and
// disabled, and the SVC enters exec with interrupts masked; exec turns off
// the MMU and jumps to entry with R0 = handoffAddr. It does not return.
func Jump(cpu *arm.CPU, to, handoffAddr uint32) {
	entry, handoff = to, handoffAddr
	table := arm.SystemVectorTable()
	table.Supervisor = exec
	cpu.SetVectorTable(table)

	cpu.FlushDataCache()
	cpu.DisableCache()
	svc()
	panic("armv7: supervisor call returned")
}

// Semihosting operations (Semihosting for AArch32 and AArch64, 6.1).
const (
	SYS_EXIT_EXTENDED = 0x20
	// ADP_Stopped_ApplicationExit (6.5, Table 6-2)
	adpStoppedApplicationExit = 0x20026
)

// exitBlock is static: Exit may run before the heap exists.
var exitBlock [2]uint32

// SemihostingExit ends an emulation with code as QEMU's exit status. QEMU
// must run with -semihosting; on hardware nobody takes the call (it
// traps), so boards call it only when emulated. If it returns, the caller
// decides what the board does next.
func SemihostingExit(code int32) {
	exitBlock[0] = adpStoppedApplicationExit
	exitBlock[1] = uint32(code)
	semihosting(SYS_EXIT_EXTENDED, uint32(uintptr(unsafe.Pointer(&exitBlock[0]))))
}

// Halt stops the processor cleanly: interrupts masked, waiting forever.
func Halt() {
	halt()
}
