//go:build tamago && !stage0

package main

// A GOOS=tamago build without the stage0 tag (`go build ./firmware/...`)
// still links a board: the runtime needs its clock and console.
import _ "github.com/teastick/teastick/board/target"
