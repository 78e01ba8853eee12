//go:build tamago && arm

package virt

import (
	"github.com/usbarmory/tamago/arm"
)

func svc()
func exec()

// read by exec
var (
	entry   uint32
	handoff uint32
)

// Jump starts a loaded image (stage 0 starting the stick): the supervisor
// call vector is pointed at exec, the data cache is cleaned to memory and
// disabled, and the SVC enters exec with interrupts masked; exec turns off
// the MMU and jumps to entry with R0 = handoffAddr. It does not return.
func Jump(to, handoffAddr uint32) {
	entry, handoff = to, handoffAddr
	table := arm.SystemVectorTable()
	table.Supervisor = exec
	ARM.SetVectorTable(table)

	ARM.FlushDataCache()
	ARM.DisableCache()
	svc()
	panic("virt: supervisor call returned")
}
