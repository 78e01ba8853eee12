//go:build tamago && stage0

package main

import (
	"github.com/teastick/teastick/tpm/measure"
)

// The linker's bounds of this program's code, read-only data and function
// table (self_$GOARCH.s).
func textRange() (start, end uintptr)
func rodataRange() (start, end uintptr)
func pclntabRange() (start, end uintptr)

// runningRegions returns stage 0's code and read-only data as they sit in
// memory: what measure.CheckStage0 compares with stage 0's ELF file.
// Writable data is left out: the runtime has changed it by now.
func runningRegions() []measure.Region {
	var rs []measure.Region
	for _, r := range []func() (uintptr, uintptr){textRange, rodataRange, pclntabRange} {
		start, end := r()
		rs = append(rs, measure.Region{Addr: uint64(start), Bytes: window(uint64(start), uint64(end-start))})
	}
	return rs
}
