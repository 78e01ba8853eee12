//go:build tamago && riscv64 && stage0

package virtrv64

import (
	_ "unsafe"
)

// Stage 0's runtime memory: above the stick's, so that loading the stick
// never overwrites the running loader.

//go:linkname ramStart runtime/goos.RamStart
var ramStart uint64 = STAGE0_RAM_START

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint64 = STAGE0_RAM_SIZE
