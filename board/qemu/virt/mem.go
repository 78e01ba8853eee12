//go:build tamago && arm

package virt

import (
	_ "unsafe"
)

// Memory map of QEMU's arm "virt" machine (hw/arm/virt.c, base_memmap) as a
// secure-world Cortex-A7 sees it with -machine virt,secure=on.
const (
	// ARM Generic Interrupt Controller v2: distributor and CPU interface.
	GIC_DIST_BASE = 0x08000000
	GIC_CPU_BASE  = 0x08010000

	// ARM PrimeCell UART (PL011), serial0: the console.
	UART0_BASE = 0x09000000

	// virtio-mmio transports: 32 slots, 0x200 apart. QEMU attaches
	// -device virtio-*-device to them from the highest slot down.
	VIRTIO_MMIO_BASE  = 0x0a000000
	VIRTIO_MMIO_SIZE  = 0x200
	VIRTIO_MMIO_SLOTS = 32

	// Platform bus for dynamic sysbus devices: -device tpm-tis-device lands
	// at its base when it is the first such device.
	PLATFORM_BUS_BASE = 0x0c000000
	PLATFORM_BUS_SIZE = 0x02000000
	TPM_BASE          = PLATFORM_BUS_BASE

	// RAM. QEMU puts the devicetree blob at its start for bare-metal
	// images that leave room for it (1 MiB); the next 64 KiB hold the
	// exception vectors, the L1/L2 page tables and the exception stacks
	// (tamago arm.CPU.Init); the image is linked right after them
	// (TEXT_START in the Makefile).
	RAM_START   = 0x40000000
	RAM_SIZE    = 0x20000000 // 512 MiB used by the stick's runtime
	DTB_BASE    = RAM_START
	DTB_SIZE    = 0x00100000
	VECTOR_BASE = RAM_START + DTB_SIZE
	TEXT_START  = VECTOR_BASE + 0x10000

	// Stage 0 (firmware/boot) runs from its own 64 MiB above the stick's
	// RAM, so that loading the stick never overwrites the loader.
	STAGE0_RAM_START  = 0x60000000
	STAGE0_RAM_SIZE   = 0x04000000
	STAGE0_TEXT_START = STAGE0_RAM_START + 0x10000
	// Stage 0 leaves the measured-boot hand-off (event log) here for the
	// stick: outside both runtimes' RAM.
	HANDOFF_BASE = 0x64000000
	HANDOFF_SIZE = 0x00100000
	// Under QEMU the stick image container is put here by
	// -device loader,file=...,addr=0x70000000,force-raw=on: up to the end
	// of QEMU's default 1 GiB of RAM, room for an image with native actors
	// (tens of MiB each: README, "Native actors").
	STICK_IMAGE_BASE = 0x70000000
	STICK_IMAGE_MAX  = 0x10000000
	// Under QEMU a copy of stage 0's own ELF file is put here by
	// -device loader,file=...,addr=0x6c000000,force-raw=on: stage 0
	// checks it is the running code and measures it into PCR 0.
	STAGE0_IMAGE_BASE = 0x6c000000
	STAGE0_IMAGE_MAX  = 0x01000000
)

// Interrupt IDs (GIC INTID) of the board's devices: SPIs start at 32, QEMU
// wires the UART to SPI 1 and virtio-mmio slot n to SPI 16+n.
const (
	UART0_IRQ       = 32 + 1
	VIRTIO_MMIO_IRQ = 32 + 16
)

//go:linkname ramStackOffset runtime/goos.RamStackOffset
var ramStackOffset uint = 0x100
