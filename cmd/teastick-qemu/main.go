// Command teastick-qemu boots a stick image under QEMU with the console on
// this terminal: what `make qemu` runs.
//
//	teastick-qemu -kernel build/stick-qemu.elf
//
// QEMU gets the arm virt machine (secure world, Cortex-A7), a virtio entropy
// device and semihosting, so the stick's exit status becomes this command's.
// Press Ctrl-A X to stop QEMU.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"

	"github.com/teastick/teastick/qemu"
)

func main() {
	kernel := flag.String("kernel", "build/stick-qemu.elf", "stick image (ELF)")
	mem := flag.Int("m", 1024, "guest RAM in MiB")
	dry := flag.Bool("n", false, "print the QEMU command line and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: teastick-qemu [-kernel IMAGE] [-m MiB] [-n] [-- extra QEMU args]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	m := qemu.Machine{Kernel: *kernel, MemoryMiB: *mem, Extra: flag.Args()}
	if *dry {
		fmt.Println("qemu-system-arm " + strings.Join(m.Args(), " "))
		return
	}
	if _, err := os.Stat(*kernel); err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: no stick image: %v (build it with `make`)\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cmd := m.Command(ctx)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	fmt.Fprintf(os.Stderr, "teastick-qemu: booting %s (Ctrl-A X quits)\n", *kernel)
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		os.Exit(exitErr.ExitCode())
	default:
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
		os.Exit(1)
	}
}
