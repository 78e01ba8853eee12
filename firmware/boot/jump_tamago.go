//go:build tamago && arm

package main

import (
	"github.com/usbarmory/tamago/arm"

	"github.com/teastick/teastick/board/qemu/virt"
)

func svc()
func exec()

// read by exec
var (
	entry   uint32
	handoff uint32
)

// jump starts the loaded stick: the supervisor call vector is pointed at
// exec, the data cache is cleaned to memory and disabled, and the SVC enters
// exec with interrupts masked. It does not return.
func jump(to uint32, handoffAddr uint32) {
	entry, handoff = to, handoffAddr
	table := arm.SystemVectorTable()
	table.Supervisor = exec
	virt.ARM.SetVectorTable(table)

	virt.ARM.FlushDataCache()
	virt.ARM.DisableCache()
	svc()
	panic("stage0: supervisor call returned")
}
