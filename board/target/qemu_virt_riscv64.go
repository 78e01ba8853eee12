//go:build tamago && qemu_virt_riscv64

package target

import (
	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/qemu/virtrv64"
)

// Board is QEMU's riscv64 virt machine (TARGET=qemu-riscv64).
var Board board.Board = virtrv64.Board
