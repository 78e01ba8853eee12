//go:build tamago && arm && !stage0

package mk2

import (
	_ "unsafe"
)

// The stick's runtime memory; the Makefile builds this board with the
// linkramstart and linkramsize tags, which leave these two to the board
// instead of tamago's imx6ul and mk2 packages (whole RAM). Stage 0 builds
// with the stage0 tag and gets its own region (ram_stage0.go).

//go:linkname ramStart runtime/goos.RamStart
var ramStart uint = RAM_START

//go:linkname ramSize runtime/goos.RamSize
var ramSize uint = RAM_SIZE

// stage0 says whether this build is stage 0.
const stage0 = false
