//go:build tamago && arm

package mk2

import (
	"github.com/teastick/teastick/image/imx"
)

// Memory map of the USB armory Mk II as teastick uses it: one 512 MiB DDR3
// module at 0x80000000 (i.MX 6ULL Applications Processor Reference Manual,
// Rev. 1, 2.2 Table 2-1: MMDC, 0x80000000), split between the stick, the
// hand-off, stage 0 and the two images the boot ROM loads with stage 0.
// The numbers live in image/imx, which lays out the boot payload to match.
//
//	0x80000000  stick runtime RAM, 384 MiB: vectors and page tables
//	            (64 KiB), then the stick's image (TEXT_START 0x80010000)
//	0x98000000  hand-off (1 MiB): stage 0's event log for the stick
//	0x98100000  stage 0 runtime RAM, 48 MiB: vectors (64 KiB), then stage
//	            0's image (STAGE0_TEXT_START 0x98110000); a TamaGo arm
//	            program's .bss alone is 32 MiB (the 32-bit runtime's
//	            static heap metadata)
//	0x9b100000  stage 0's own ELF file (8 MiB at most)
//	0x9b900000  the stick image container (image/bootimg), to 64 KiB
//	            below the end of RAM (the boot ROM's CSF area)
//
// The boot ROM loads one contiguous payload (image/imx) from stage 0's
// first segment to the end of the stick container.
const (
	RAM_START  = imx.Mk2RAMStart
	RAM_SIZE   = imx.Mk2StickRAMSize
	TEXT_START = RAM_START + 0x10000

	HANDOFF_BASE = imx.Mk2HandoffBase
	HANDOFF_SIZE = imx.Mk2HandoffSize

	STAGE0_RAM_START  = imx.Mk2Stage0RAMStart
	STAGE0_RAM_SIZE   = imx.Mk2Stage0RAMSize
	STAGE0_TEXT_START = STAGE0_RAM_START + 0x10000

	STAGE0_IMAGE_BASE = imx.Mk2Stage0Image
	STAGE0_IMAGE_MAX  = imx.Mk2Stage0ImageMax

	STICK_IMAGE_BASE = imx.Mk2StickImage
	STICK_IMAGE_MAX  = imx.Mk2StickImageMax
)
