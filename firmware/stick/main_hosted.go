//go:build !tamago

// Command stick is the teastick firmware. Built for Linux it is the hosted
// stick: the same core, with the host's clock, entropy and console.
package main

import (
	"os"
	"runtime"
	"strconv"
	"time"
)

var start = time.Now()

func main() {
	uptime := func() time.Duration { return time.Since(start) }
	writeBanner(os.Stdout, Version, BoardInfo{
		Board:   "linux-hosted",
		CPU:     runtime.GOARCH,
		Entropy: "host (getrandom)",
		Uptime:  uptime(),
	})
	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, uptime)
}
