//go:build !(tamago && stage0)

// Command boot is stage 0, the loader of the stick image. It exists only as
// a bare-metal program: build it with `make` (the stage0 tag on
// GOOS=tamago).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "boot: stage 0 runs only on the stick; build it with make")
	os.Exit(2)
}
