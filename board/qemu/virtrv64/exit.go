//go:build tamago && riscv64

package virtrv64

import (
	"github.com/teastick/teastick/board/mmio"
)

// SiFive test device (QEMU hw/misc/sifive_test.c): a 32-bit write of
// FINISHER_PASS ends the emulation with status 0, FINISHER_FAIL with
// status code<<16 | FINISHER_FAIL ends it with status code.
const (
	FINISHER_FAIL = 0x3333
	FINISHER_PASS = 0x5555
)

func halt()

// Exit ends the emulation with code as QEMU's exit status.
func Exit(code int32) {
	if code == 0 {
		mmio.Write32(TEST_BASE, FINISHER_PASS)
	} else {
		mmio.Write32(TEST_BASE, uint32(code)<<16|FINISHER_FAIL)
	}
	halt()
}
