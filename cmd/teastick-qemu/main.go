// Command teastick-qemu boots a stick image under QEMU with the console on
// this terminal: what `make qemu` runs.
//
//	teastick-qemu -stage0 build/boot-qemu.elf -stick build/stick-qemu.elf
//	teastick-qemu -kernel build/stick-qemu.elf   (the stick alone)
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
	"path/filepath"
	"strings"

	"github.com/teastick/teastick/qemu"
)

func main() {
	kernel := flag.String("kernel", "", "boot this ELF directly (the stick without stage 0)")
	stage0 := flag.String("stage0", "build/boot-qemu.elf", "stage 0 image (ELF)")
	stick := flag.String("stick", "build/stick-qemu.elf", "stick image (ELF), loaded and measured by stage 0")
	mem := flag.Int("m", 1024, "guest RAM in MiB")
	tpmState := flag.String("tpm-state", "build/tpm", "software TPM state directory, one per stick (provisioned on first use); empty: no TPM")
	dry := flag.Bool("n", false, "print the QEMU command line and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: teastick-qemu [-stage0 ELF -stick ELF | -kernel ELF] [-m MiB] [-n] [-- extra QEMU args]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	m := qemu.Machine{Kernel: *kernel, MemoryMiB: *mem, Extra: flag.Args()}
	if *kernel == "" {
		for _, p := range []string{*stage0, *stick} {
			if _, err := os.Stat(p); err != nil {
				fmt.Fprintf(os.Stderr, "teastick-qemu: %v (build the images with `make`)\n", err)
				os.Exit(2)
			}
		}
		dir, err := os.MkdirTemp("", "teastick-qemu-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		m.Kernel = *stage0
		if m.StickImage, err = qemu.WrapStick(*stick, dir); err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
	} else if _, err := os.Stat(*kernel); err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v (build the images with `make`)\n", err)
		os.Exit(2)
	}
	if *dry {
		if *tpmState != "" {
			m.TPM = &qemu.SWTPM{Dir: *tpmState}
		}
		fmt.Println("qemu-system-arm " + strings.Join(m.Args(), " "))
		if m.StickImage != "" {
			os.RemoveAll(filepath.Dir(m.StickImage))
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *tpmState != "" {
		dir, err := filepath.Abs(*tpmState)
		if err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "teastick-qemu: software TPM state in %s\n", dir)
		tpm := &qemu.SWTPM{Dir: dir, Provision: true}
		if err := tpm.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		defer tpm.Stop()
		m.TPM = tpm
	}
	cmd := m.Command(ctx)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	fmt.Fprintf(os.Stderr, "teastick-qemu: booting %s (Ctrl-A X quits)\n", m.Kernel)
	err := cmd.Run()
	if m.StickImage != "" {
		os.RemoveAll(filepath.Dir(m.StickImage))
	}
	if m.TPM != nil {
		m.TPM.Stop()
	}
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
