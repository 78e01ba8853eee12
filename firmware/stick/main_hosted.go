//go:build !tamago

// Command stick is the teastick firmware. Built for Linux it is the hosted
// stick: the same core, with the host's clock, entropy and console.
package main

import (
	"fmt"
	"io"
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
	go console(os.Stdin, os.Stdout, map[string]command{
		"uptime": {help: "time since start", run: func(w io.Writer, _ []string) {
			fmt.Fprintf(w, "console: uptime %d ms\n", uptime().Milliseconds())
		}},
		"status": {help: "version and board", run: func(w io.Writer, _ []string) {
			fmt.Fprintf(w, "console: teastick %s on linux-hosted\n", Version)
		}},
	})
	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, uptime)
}
