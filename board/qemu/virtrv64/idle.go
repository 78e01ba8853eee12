//go:build tamago && riscv64

package virtrv64

import (
	"time"
)

// CLINT register of hart 0's timer compare (SiFive FU540-C000 Manual
// v1p4, 9.1 CLINT Memory Map: mtimecmp at 0x4000).
const MTIMECMP = 0x4000

// maxIdle bounds one wait, so that a stale deadline cannot hold the hart.
const maxIdle = time.Second

func waitTimer(mtimecmp uintptr, when uint64)

// idle is the runtime's idle hook (goos.Idle): with no goroutine to run
// until the next timer at pollUntil (nanotime; 0: no timer), the hart
// waits in WFI for the CLINT timer instead of spinning, so an idle stick
// leaves QEMU's host thread idle too. Without a timer there is nothing to
// wait for (no interrupts wake the hart on this board): it returns.
func idle(pollUntil int64) {
	if pollUntil <= 0 {
		return
	}
	now := CLINT.Nanotime()
	if pollUntil <= now {
		return
	}
	pollUntil = min(pollUntil, now+int64(maxIdle))
	ticks := uint64(pollUntil-CLINT.TimerOffset) / (1e9 / MTIME_FREQ)
	waitTimer(CLINT_BASE+MTIMECMP, ticks)
}
