//go:build tamago && arm

package mk2

import (
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board/armv7"
)

// Exit stops the board. Emulated (QEMU -semihosting), code becomes QEMU's
// exit status. On a real stick there is no one to take a semihosting call
// (it would trap): after an error the white LED blinks until the stick is
// unplugged; after a clean stop (code 0) both LEDs go off and the processor
// halts.
func Exit(code int32) {
	if !imx6ul.Native {
		armv7.SemihostingExit(code)
	}
	if code != 0 {
		blinkForever()
	}
	leds(false, false)
	armv7.Halt()
}
