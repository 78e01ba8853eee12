//go:build tamago && arm && stage0

package main

import (
	"github.com/teastick/teastick/tpm/measure"
)

// The linker's bounds of this program's code, read-only data and function
// table (self_arm.s).
func textRange() (start, end uint32)
func rodataRange() (start, end uint32)
func pclntabRange() (start, end uint32)

// runningRegions returns stage 0's code and read-only data as they sit in
// memory: what measure.CheckStage0 compares with stage 0's ELF file.
// Writable data is left out: the runtime has changed it by now.
func runningRegions() []measure.Region {
	var rs []measure.Region
	for _, r := range []func() (uint32, uint32){textRange, rodataRange, pclntabRange} {
		start, end := r()
		rs = append(rs, measure.Region{Addr: start, Bytes: window(start, end-start)})
	}
	return rs
}
