// Command imximage makes the USB armory Mk II's boot payload and finishes
// the boot image mkimage makes of it (image/imx):
//
//	imximage payload -stage0 boot.elf -stick stick.elf -o payload.bin
//	    lays out stage 0, its own ELF file, the stick's container and
//	    the directory; prints the payload's load address (mkimage's -e)
//	imximage entry -stage0 boot.elf -stick stick.elf teastick.imx
//	    checks the payload sits in the .imx where its IVT loads it and sets
//	    the IVT's entry to stage 0's entry point
//	imximage qemu -stage0 boot.elf -stick stick.elf -o payload.bin
//	    prints the QEMU arguments that load payload.bin (written by
//	    payload) where the boot ROM would and start the CPU at stage 0's
//	    entry (make qemu TARGET=usbarmory)
//
// Progress and sizes go to standard error.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/teastick/teastick/image/bootimg"
	"github.com/teastick/teastick/image/imx"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "imximage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: imximage payload|entry -stage0 ELF -stick ELF ...")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	stage0 := fs.String("stage0", "", "stage 0's ELF file")
	stick := fs.String("stick", "", "the stick's ELF file")
	out := fs.String("o", "", "payload output (payload)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	s0, err := os.ReadFile(*stage0)
	if err != nil {
		return err
	}
	st, err := os.ReadFile(*stick)
	if err != nil {
		return err
	}
	p, err := imx.Build(imx.Mk2, s0, bootimg.Wrap(st))
	if err != nil {
		return err
	}
	switch args[0] {
	case "payload":
		if *out == "" {
			return fmt.Errorf("payload: -o missing")
		}
		if err := os.WriteFile(*out, p.Bytes, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "imximage: payload %s: %d bytes at %#x: stage 0's ELF %d bytes at %#x, stick container %d bytes at %#x, directory at %#x, stage 0 to %#x (entry %#x; in memory to %#x with .bss); the stick loaded to %#x with .bss, %d bytes below the payload\n",
			*out, len(p.Bytes), p.Load, p.Dir.Stage0Len, p.Dir.Stage0Base, p.Dir.ContainerLen, p.Dir.ContainerBase,
			imx.Mk2.DirAddr(), p.Load+uint64(len(p.Bytes)), p.Entry, p.Stage0End, p.StickEnd, p.Load-p.StickEnd)
		fmt.Printf("%#x\n", p.Load)
		return nil
	case "qemu":
		fmt.Printf("-device loader,file=%s,addr=%#x,force-raw=on -device loader,addr=%#x,cpu-num=0\n", *out, p.Load, p.Entry)
		return nil
	case "entry":
		if fs.NArg() != 1 {
			return fmt.Errorf("entry: one .imx file")
		}
		img, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		if err := imx.PatchEntry(img, p); err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		if err := os.WriteFile(fs.Arg(0), img, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "imximage: %s: entry %#x (stage 0), %d bytes\n", fs.Arg(0), p.Entry, len(img))
		return nil
	}
	return fmt.Errorf("unknown command %q (payload, entry, qemu)", args[0])
}
