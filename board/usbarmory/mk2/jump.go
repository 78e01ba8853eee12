//go:build tamago && arm

package mk2

import (
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board/armv7"
)

// Jump starts a loaded image (stage 0 starting the stick), as on QEMU's
// virt board: armv7.Jump on the i.MX6's core. It does not return.
func Jump(to, handoffAddr uint32) {
	armv7.Jump(imx6ul.ARM, to, handoffAddr)
}
