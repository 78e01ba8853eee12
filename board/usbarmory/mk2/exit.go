//go:build tamago && arm

package mk2

import (
	"unsafe"

	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
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

// Exit stops the board. Emulated (QEMU -semihosting), code becomes QEMU's
// exit status. On a real stick there is no one to take a semihosting call
// (it would trap): after an error the white LED blinks until the stick is
// unplugged; after a clean stop (code 0) both LEDs go off and the processor
// halts.
func Exit(code int32) {
	if !imx6ul.Native {
		exitBlock[0] = adpStoppedApplicationExit
		exitBlock[1] = uint32(code)
		semihosting(SYS_EXIT_EXTENDED, uint32(uintptr(unsafe.Pointer(&exitBlock[0]))))
	}
	if code != 0 {
		blinkForever()
	}
	leds(false, false)
	halt()
}
