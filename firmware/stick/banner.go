package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
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

// consoleView is set at build time (-X main.consoleView=verbose, make
// CONSOLE=verbose) to start the stick with the chatty console view.
var consoleView string

// quietEvery is how many heartbeats the quiet console view lets pass
// between two heartbeat lines: one a minute.
const quietEvery = 60

// view is the console's verbosity. Quiet (the default) prints state
// changes, errors and a heartbeat line a minute: the console is for
// people typing in it. Verbose prints a heartbeat every second and the
// runtime's debug lines (refused WASI random_get calls among them).
type view struct {
	verbose atomic.Bool
	// level is the runtime log's level: debug when verbose, else info.
	level slog.LevelVar
}

// newView returns the view a build starts with (consoleView).
func newView() *view {
	v := &view{}
	v.set(consoleView == "verbose")
	return v
}

func (v *view) set(on bool) {
	v.verbose.Store(on)
	if on {
		v.level.Set(slog.LevelDebug)
	} else {
		v.level.Set(slog.LevelInfo)
	}
}

// command is the console's verbose command.
func (v *view) command() command {
	return command{help: "on|off: a heartbeat every second and debug lines, or (off, the default) state changes, errors and a heartbeat a minute",
		run: func(w io.Writer, args []string) {
			switch firstArg(args) {
			case "on":
				v.set(true)
			case "off":
				v.set(false)
			case "":
			default:
				fmt.Fprintln(w, "verbose: usage: verbose on|off")
				return
			}
			state := "off: state changes, errors and a heartbeat a minute"
			if v.verbose.Load() {
				state = "on: a heartbeat every second and debug lines"
			}
			fmt.Fprintf(w, "console: verbose %s\n", state)
		}}
}

// heartbeat beats n times, one beat per period, then returns; n <= 0
// means forever. It prints a beat's line when the view is verbose, and
// every quietEvery-th beat when it is not.
func heartbeat(w io.Writer, n int, period time.Duration, v *view, uptime func() time.Duration) {
	for i := 1; n <= 0 || i <= n; i++ {
		time.Sleep(period)
		if v.verbose.Load() || i%quietEvery == 0 {
			fmt.Fprintf(w, "heartbeat %d uptime %d ms\n", i, uptime().Milliseconds())
		}
	}
}
