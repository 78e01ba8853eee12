//go:build tamago && arm && stage0

package mk2

import (
	_ "unsafe"
)

// Stage 0's runtime memory: above the stick's and the hand-off, below the
// images the boot ROM loads with it, so that neither loading the stick nor
// stage 0's heap overwrites anything still needed.

//go:linkname ramStart runtime/goos.RamStart
var ramStart uint = STAGE0_RAM_START

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint = STAGE0_RAM_SIZE

// stage0 says whether this build is stage 0.
const stage0 = true
