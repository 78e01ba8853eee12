package runtime_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time of the test process (getrusage(2),
// RUSAGE_SELF): on a shared machine, where wall time swings with the other
// tenants' load, what a run cost itself, its other goroutines (wazero's
// deadline watcher, the collector) included. Meaningful with one P.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
