//go:build tamago && usbarmory_mk2

package target

import (
	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/usbarmory/mk2"
)

// Board is the USB armory Mk II (TARGET=usbarmory).
var Board board.Board = mk2.Board
