//go:build tamago && arm

package virt

import (
	"unsafe"
)

// Semihosting operations (Semihosting for AArch32 and AArch64, 6.1).
const (
	SYS_EXIT_EXTENDED = 0x20
	// ADP_Stopped_ApplicationExit (6.5, Table 6-2)
	adpStoppedApplicationExit = 0x20026
)

func semihosting(op uint32, arg uint32) uint32
func halt()

// exitBlock is static: Exit may run before the heap exists.
var exitBlock [2]uint32

// Exit ends the emulation with code as QEMU's exit status. QEMU must run with
// -semihosting (the launcher and the tests pass it); on hardware this board
// does not exist.
func Exit(code int32) {
	exitBlock[0] = adpStoppedApplicationExit
	exitBlock[1] = uint32(code)
	semihosting(SYS_EXIT_EXTENDED, uint32(uintptr(unsafe.Pointer(&exitBlock[0]))))
	halt()
}

// Halt stops the processor cleanly: interrupts masked, waiting forever.
func Halt() {
	halt()
}
