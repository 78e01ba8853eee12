//go:build tamago && (arm || riscv64)

// Package mmio reads and writes memory-mapped device registers on bare metal.
//
// Every access is a single load or store of the given width, done in
// assembly so that the compiler can neither merge, reorder nor elide it, and
// framed by full memory barriers (ARMv7 DMB SY, RISC-V FENCE RW,RW with the
// I/O bits: FENCE IORW,IORW) so that normal-memory writes made before a
// register write (for example virtqueue descriptors) are visible to the
// device before it is notified.
//
// Addresses are uintptr: as wide as the processor's, so that 64-bit boards
// place devices anywhere. Offsets within a device's window stay uint32.
//
// This package is only meant to be used with `GOOS=tamago` on arm or
// riscv64.
package mmio

import "unsafe"

// Read8 returns the byte register at addr.
func Read8(addr uintptr) uint8

// Write8 sets the byte register at addr.
func Write8(addr uintptr, val uint8)

// Read16 returns the 16-bit register at addr.
func Read16(addr uintptr) uint16

// Read32 returns the 32-bit register at addr.
func Read32(addr uintptr) uint32

// Write32 sets the 32-bit register at addr.
func Write32(addr uintptr, val uint32)

// Barrier is a full memory barrier (DMB SY on arm, FENCE IORW,IORW on
// riscv64).
func Barrier()

// Region is a window of registers starting at Base, usable through the small
// register interfaces of the portable drivers (virtio, TPM TIS).
type Region struct {
	Base uintptr
}

func (r Region) Read8(off uint32) uint8         { return Read8(r.Base + uintptr(off)) }
func (r Region) Write8(off uint32, val uint8)   { Write8(r.Base+uintptr(off), val) }
func (r Region) Read16(off uint32) uint16       { return Read16(r.Base + uintptr(off)) }
func (r Region) Read32(off uint32) uint32       { return Read32(r.Base + uintptr(off)) }
func (r Region) Write32(off uint32, val uint32) { Write32(r.Base+uintptr(off), val) }

// Pointer returns addr as a pointer, for memory windows at fixed physical
// addresses (images and hand-off areas placed by the loader).
func Pointer(addr uintptr) unsafe.Pointer
