package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Version is stamped at build time (-ldflags "-X main.Version=...").
var Version = "dev"

// exitAfter, when set at build time to a positive number of heartbeats
// (-X main.exitAfter=N), makes a test build exit with status 0 after that many
// heartbeats. The serving stick leaves it empty and runs forever.
var exitAfter string

// BoardInfo is what the banner says about the machine.
type BoardInfo struct {
	Board    string
	CPU      string
	RAMStart uint64
	RAMSize  uint64
	Entropy  string
	Devices  []string
	// Uptime is the time since machine reset when the banner is printed.
	Uptime time.Duration
}

// writeBanner prints the boot banner: one line per fact, each prefixed so a
// test or an operator can grep for it.
func writeBanner(w io.Writer, v string, b BoardInfo) {
	fmt.Fprintf(w, "teastick %s\n", v)
	fmt.Fprintf(w, "board: %s cpu: %s\n", b.Board, b.CPU)
	if b.RAMSize != 0 {
		fmt.Fprintf(w, "ram: %d MiB at %#x\n", b.RAMSize>>20, b.RAMStart)
	}
	fmt.Fprintf(w, "entropy: %s\n", b.Entropy)
	if len(b.Devices) == 0 {
		fmt.Fprintf(w, "devices: none\n")
	} else {
		fmt.Fprintf(w, "devices: %s\n", strings.Join(b.Devices, ", "))
	}
	fmt.Fprintf(w, "boot: banner at %d ms\n", b.Uptime.Milliseconds())
}

// heartbeat prints n heartbeats, one per period, then returns; n <= 0 means
// forever.
func heartbeat(w io.Writer, n int, period time.Duration, uptime func() time.Duration) {
	for i := 1; n <= 0 || i <= n; i++ {
		time.Sleep(period)
		fmt.Fprintf(w, "heartbeat %d uptime %d ms\n", i, uptime().Milliseconds())
	}
}
