//go:build tamago && arm

package virt

import "github.com/teastick/teastick/board/armv7"

// Exit ends the emulation with code as QEMU's exit status. QEMU must run with
// -semihosting (the launcher and the tests pass it); on hardware this board
// does not exist.
func Exit(code int32) {
	armv7.SemihostingExit(code)
	armv7.Halt()
}

// Halt stops the processor cleanly: interrupts masked, waiting forever.
func Halt() {
	armv7.Halt()
}
