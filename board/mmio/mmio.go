//go:build tamago && arm

// Package mmio reads and writes memory-mapped device registers on bare metal.
//
// Every access is a single load or store of the given width, done in
// assembly so that the compiler can neither merge, reorder nor elide it, and
// framed by data memory barriers (ARMv7 DMB SY) so that normal-memory writes
// made before a register write (for example virtqueue descriptors) are visible
// to the device before it is notified.
//
// This package is only meant to be used with `GOOS=tamago GOARCH=arm`.
package mmio

import "unsafe"

// Read8 returns the byte register at addr.
func Read8(addr uint32) uint8

// Write8 sets the byte register at addr.
func Write8(addr uint32, val uint8)

// Read16 returns the 16-bit register at addr.
func Read16(addr uint32) uint16

// Read32 returns the 32-bit register at addr.
func Read32(addr uint32) uint32

// Write32 sets the 32-bit register at addr.
func Write32(addr uint32, val uint32)

// Barrier is a full data memory barrier (DMB SY).
func Barrier()

// Region is a window of registers starting at Base, usable through the small
// register interfaces of the portable drivers (virtio, TPM TIS).
type Region struct {
	Base uint32
}

func (r Region) Read8(off uint32) uint8         { return Read8(r.Base + off) }
func (r Region) Write8(off uint32, val uint8)   { Write8(r.Base+off, val) }
func (r Region) Read16(off uint32) uint16       { return Read16(r.Base + off) }
func (r Region) Read32(off uint32) uint32       { return Read32(r.Base + off) }
func (r Region) Write32(off uint32, val uint32) { Write32(r.Base+off, val) }

// Pointer returns addr as a pointer, for memory windows at fixed physical
// addresses (images and hand-off areas placed by the loader).
func Pointer(addr uint32) unsafe.Pointer
