//go:build tamago && riscv64 && !stage0

package virtrv64

import (
	_ "unsafe"
)

// The stick's runtime memory. Stage 0 builds with the stage0 tag and gets
// its own region (ram_stage0.go).

//go:linkname ramStart runtime/goos.RamStart
var ramStart uint64 = RAM_START

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint64 = RAM_SIZE
