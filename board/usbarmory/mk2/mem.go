//go:build tamago && arm

package mk2

// Memory map of the USB armory Mk II as teastick uses it: one 512 MiB DDR3
// module at 0x80000000 (i.MX 6ULL Applications Processor Reference Manual,
// Rev. 1, 2.2 Table 2-1: MMDC, 0x80000000), split between the stick, the
// hand-off, stage 0 and the two images the boot ROM loads with stage 0.
//
//	0x80000000  stick runtime RAM, 448 MiB: vectors and page tables
//	            (64 KiB), then the stick's image (TEXT_START 0x80010000)
//	0x9c000000  hand-off (1 MiB): stage 0's event log for the stick
//	0x9c100000  stage 0 runtime RAM, 15 MiB: vectors (64 KiB), then stage
//	            0's image (STAGE0_TEXT_START 0x9c110000)
//	0x9d000000  stage 0's own ELF file (8 MiB at most)
//	0x9d800000  the stick image container (image/bootimg), to the end of
//	            RAM (40 MiB at most)
//
// The boot ROM loads one contiguous payload (image/imx) from
// STAGE0_TEXT_START to the end of the stick container: stage 0's segments
// with their zero-filled remainder, zeros up to STAGE0_IMAGE_BASE, stage
// 0's ELF file, zeros up to STICK_IMAGE_BASE, the container.
const (
	RAM_START  = 0x80000000
	RAM_SIZE   = 0x1c000000 // 448 MiB used by the stick's runtime
	TEXT_START = RAM_START + 0x10000

	HANDOFF_BASE = 0x9c000000
	HANDOFF_SIZE = 0x00100000

	STAGE0_RAM_START  = 0x9c100000
	STAGE0_RAM_SIZE   = 0x00f00000
	STAGE0_TEXT_START = STAGE0_RAM_START + 0x10000

	STAGE0_IMAGE_BASE = 0x9d000000
	STAGE0_IMAGE_MAX  = 0x00800000

	STICK_IMAGE_BASE = 0x9d800000
	STICK_IMAGE_MAX  = 0xa0000000 - STICK_IMAGE_BASE
)
