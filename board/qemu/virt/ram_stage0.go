//go:build tamago && arm && stage0

package virt

import (
	_ "unsafe"
)

// Stage 0's runtime memory: above the stick's, so that loading the stick
// never overwrites the running loader.

//go:linkname ramStart runtime/goos.RamStart
var ramStart uint = STAGE0_RAM_START

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint = STAGE0_RAM_SIZE

// vectorBase is where arm.CPU.Init puts the vector table, page tables and
// exception stacks (64 KiB).
const vectorBase = STAGE0_RAM_START
