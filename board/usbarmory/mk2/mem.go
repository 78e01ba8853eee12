//go:build tamago && arm

package mk2

import (
	"fmt"
	"sync"

	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/image/imx"
)

// Memory map of the USB armory Mk II as teastick uses it: one 512 MiB DDR3
// module at 0x80000000 (i.MX 6ULL Applications Processor Reference Manual,
// Rev. 1, 2.2 Table 2-1: MMDC, 0x80000000), split between the stick,
// stage 0 and the hand-off; the images the boot ROM loads with stage 0
// lie at the top of the stick's RAM until the stick runs. The numbers
// live in image/imx, which lays out the boot payload to match.
//
//	0x80000000  stick runtime RAM, 464 MiB: vectors and page tables
//	            (64 KiB), then the stick's image (TEXT_START 0x80010000),
//	            its .bss, heap and, at the top, its stack
//	  ...       until the stick runs: stage 0's own ELF file and the
//	            stick image container, packed against 0x9d000000, where
//	            the directory (64 bytes at 0x9cffffc0) says where they
//	            are; stage 0 loads the stick only below them
//	            (board.Memory.LoadEnd), and the stick's heap reuses them
//	0x9d000000  stage 0 runtime RAM, 47 MiB: vectors (64 KiB), stage 0's
//	            image (STAGE0_TEXT_START 0x9d010000), its 32 MiB .bss (the
//	            32-bit Go runtime's static heap metadata), heap, stack
//	0x9ff00000  hand-off (1 MiB): stage 0's event log for the stick
//
// The boot ROM loads one contiguous payload (image/imx) from below the ELF
// copy to the end of stage 0's file.
const (
	RAM_START  = imx.Mk2RAMStart
	RAM_SIZE   = imx.Mk2StickRAMSize
	TEXT_START = RAM_START + 0x10000

	HANDOFF_BASE = imx.Mk2HandoffBase
	HANDOFF_SIZE = imx.Mk2HandoffSize

	IMAGES_START = imx.Mk2ImagesStart

	STAGE0_RAM_START  = imx.Mk2Stage0RAMStart
	STAGE0_RAM_SIZE   = imx.Mk2Stage0RAMSize
	STAGE0_TEXT_START = STAGE0_RAM_START + 0x10000
)

var (
	dirOnce sync.Once
	dir     imx.Dir
	dirErr  error
)

// imagesDir reads the boot payload's directory (once: stage 0 reads it
// before anything is written below its RAM). Without a valid one both
// windows are empty at the directory's address: stage 0 then finds no
// stick image and stops.
func imagesDir() (imx.Dir, error) {
	dirOnce.Do(func() {
		var b [imx.DirSize]byte
		at := uintptr(imx.Mk2.DirAddr())
		for i := 0; i < len(b); i += 4 {
			v := mmio.Read32(at + uintptr(i))
			b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
		dir, dirErr = imx.Mk2.Directory(b[:])
		if dirErr != nil {
			end := imx.Mk2.DirAddr()
			dir = imx.Dir{Stage0Base: end, ContainerBase: end}
			dirErr = fmt.Errorf("mk2: %w", dirErr)
		}
	})
	return dir, dirErr
}
