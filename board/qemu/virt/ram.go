//go:build tamago && arm && !stage0

package virt

import (
	_ "unsafe"
)

// The stick's runtime memory. Stage 0 builds with the stage0 tag and gets
// its own region (ram_stage0.go).

//go:linkname ramStart runtime/goos.RamStart
var ramStart uint = RAM_START

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint = RAM_SIZE

// vectorBase is where arm.CPU.Init puts the vector table, page tables and
// exception stacks (64 KiB).
const vectorBase = VECTOR_BASE
