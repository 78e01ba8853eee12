//go:build tamago && qemu_virt_arm

package target

import (
	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/qemu/virt"
)

// Board is QEMU's arm virt machine with a Cortex-A7 (TARGET=qemu).
var Board board.Board = virt.Board
