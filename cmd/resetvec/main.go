// Command resetvec gives a RISC-V ELF executable a reset vector at a fixed
// address (image/resetvec): `resetvec -at 0x80000000 file.elf` rewrites
// the file in place. The Makefile runs it after linking a riscv64 image.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/teastick/teastick/image/resetvec"
)

func main() {
	at := flag.String("at", "0x80000000", "reset address")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: resetvec [-at ADDR] FILE.elf")
		os.Exit(2)
	}
	addr, err := strconv.ParseUint(*at, 0, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "resetvec: -at: %v\n", err)
		os.Exit(2)
	}
	path := flag.Arg(0)
	b, err := os.ReadFile(path)
	if err == nil {
		b, err = resetvec.Add(b, addr)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "resetvec: %s: %v\n", path, err)
		os.Exit(1)
	}
}
