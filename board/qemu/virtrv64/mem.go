//go:build tamago && riscv64

package virtrv64

import (
	_ "unsafe"
)

// Memory map of QEMU's riscv64 "virt" machine (hw/riscv/virt.c,
// virt_memmap), checked with -machine virt,dumpdtb= on QEMU 7.2.
const (
	// SiFive test device: writes end the emulation (exit status).
	TEST_BASE = 0x00100000

	// Core-local interruptor: mtime counts at 10 MHz.
	CLINT_BASE = 0x02000000
	MTIME_FREQ = 10000000

	// Platform bus for dynamic sysbus devices: -device tpm-tis-device
	// lands at its base. QEMU 7.2's devicetree does not describe it.
	PLATFORM_BUS_BASE = 0x04000000
	TPM_BASE          = PLATFORM_BUS_BASE

	// Platform-level interrupt controller (unused: the board polls).
	PLIC_BASE = 0x0c000000

	// NS16550A UART, serial0: the console (3.6864 MHz input clock).
	UART0_BASE = 0x10000000
	UART0_CLK  = 3686400

	// virtio-mmio transports: 8 slots, 0x1000 apart. QEMU attaches
	// -device virtio-*-device to them from the highest slot down.
	VIRTIO_MMIO_BASE  = 0x10001000
	VIRTIO_MMIO_SIZE  = 0x1000
	VIRTIO_MMIO_SLOTS = 8

	// RAM. The boot ROM jumps to its start in machine mode (-bios
	// none): the Makefile puts a reset vector there (image/resetvec)
	// that jumps to the image's entry. The image is linked 64 KiB in
	// (TEXT_START in the Makefile). QEMU puts its devicetree in the top
	// 2 MiB of RAM (below 3 GiB), outside everything here for -m 1G.
	RAM_START  = 0x80000000
	RAM_SIZE   = 0x20000000 // 512 MiB used by the stick's runtime
	RESET_ADDR = RAM_START
	TEXT_START = RAM_START + 0x10000

	// Stage 0 runs from its own 64 MiB above the stick's RAM, so that
	// loading the stick never overwrites the loader.
	STAGE0_RAM_START  = 0xa0000000
	STAGE0_RAM_SIZE   = 0x04000000
	STAGE0_TEXT_START = STAGE0_RAM_START + 0x10000
	// The measured-boot hand-off block, outside both runtimes' RAM.
	HANDOFF_BASE = 0xa4000000
	HANDOFF_SIZE = 0x00100000
	// Under QEMU: a copy of stage 0's own ELF file, which stage 0
	// measures itself by.
	STAGE0_IMAGE_BASE = 0xac000000
	STAGE0_IMAGE_MAX  = 0x01000000
	// Under QEMU: the stick image container (-device loader,...,
	// addr=0xb0000000,force-raw=on), up to QEMU's devicetree. QEMU 7.2
	// puts the devicetree at the 2 MiB boundary below min(end of RAM,
	// 3 GiB) (hw/riscv/boot.c, riscv_load_fdt): at 0xbfe00000 for any
	// -m from 1G up ("info roms": fdt at 0xbfe00000, 1 MiB). The slot
	// was 64 MiB at 0xa8000000: an image with the four example actors
	// translated in (65.2 MB, about 13.5 MB an actor: README, "Native
	// actors") filled all but 1.9 MB of it.
	STICK_IMAGE_BASE = 0xb0000000
	STICK_IMAGE_MAX  = FDT_BASE - STICK_IMAGE_BASE
	FDT_BASE         = 0xbfe00000
)

//go:linkname ramStackOffset runtime/goos.RamStackOffset
var ramStackOffset uint64 = 0x100
