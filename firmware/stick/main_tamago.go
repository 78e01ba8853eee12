//go:build tamago && arm

// Command stick is the teastick firmware: the unikernel the stick boots.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/teastick/teastick/board/qemu/virt"
)

func main() {
	uptime := func() time.Duration { return time.Duration(virt.ARM.GetTime()) }

	var devs []string
	for _, d := range virt.Devices() {
		devs = append(devs, fmt.Sprintf("%s@%#x(slot %d, v%d)", d.Name(), d.Base, d.Slot, d.Version))
	}
	ramStart, ramEnd := runtime.MemRegion()
	writeBanner(os.Stdout, Version, BoardInfo{
		Board:    virt.Name,
		CPU:      "cortex-a7",
		RAMStart: uint64(ramStart),
		RAMSize:  uint64(ramEnd - ramStart),
		Entropy:  fmt.Sprintf("virtio-rng (slot %d) -> chacha20 drbg", virt.EntropySlot()),
		Devices:  devs,
		Uptime:   uptime(),
	})

	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, uptime)
	if n > 0 {
		fmt.Println("teastick: test build, exiting")
		virt.Exit(0)
	}
}
