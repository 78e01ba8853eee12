//go:build tamago && arm

package mk2

import (
	"github.com/usbarmory/tamago/arm"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

func svc()
func exec()

// read by exec
var (
	entry   uint32
	handoff uint32
)

// Jump starts a loaded image (stage 0 starting the stick), as on QEMU's
// virt board: the supervisor call vector is pointed at exec, the data
// cache is cleaned to memory and disabled, and the SVC enters exec with
// interrupts masked; exec turns off the MMU and jumps to entry with R0 =
// handoffAddr. It does not return.
func Jump(to, handoffAddr uint32) {
	entry, handoff = to, handoffAddr
	table := arm.SystemVectorTable()
	table.Supervisor = exec
	imx6ul.ARM.SetVectorTable(table)

	imx6ul.ARM.FlushDataCache()
	imx6ul.ARM.DisableCache()
	svc()
	panic("mk2: supervisor call returned")
}
