//go:build tamago && riscv64

package virtrv64

import (
	"debug/elf"
	"fmt"
	"io"
	"time"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/qemu/vmmio"
)

// Board is this board behind the firmware's contract. It does not offer
// board.Interrupts: tamago v1.26.0 takes no interrupts on riscv64.
var Board board.Board = virtBoard{}

type virtBoard struct{}

func (virtBoard) Name() string { return Name }
func (virtBoard) CPU() string  { return "rv64gc" }

func (virtBoard) Console() io.ReadWriter { return UART0 }
func (virtBoard) Uptime() time.Duration  { return time.Duration(CLINT.Nanotime()) }
func (virtBoard) Entropy() string {
	return fmt.Sprintf("virtio-rng (slot %d) -> chacha20 drbg", EntropySlot())
}
func (virtBoard) ReseedFailures() uint32 { return vmmio.ReseedFailures }

func (virtBoard) Devices() []board.Device { return Devices() }

func (virtBoard) OpenNet() (board.NIC, board.Device, error) {
	n, d, err := OpenNet()
	if err != nil {
		return nil, d, err
	}
	return n, d, nil
}

func (virtBoard) TPM() (board.Registers, uint64, uint32, error) {
	id, err := ProbeTPM()
	return TPM, TPM_BASE, id, err
}

// Link is QEMU user networking (vmmio.UserLink).
func (virtBoard) Link() board.Link { return vmmio.UserLink }

func (virtBoard) Exit(code int32) { Exit(code) }

// Indicate does nothing: QEMU's virt machine has no status LED.
func (virtBoard) Indicate(board.State) {}

func (virtBoard) Memory() board.Memory {
	return board.Memory{
		Machine:  elf.EM_RISCV,
		RAMStart: RAM_START, RAMSize: RAM_SIZE,
		LoadStart:   RAM_START,
		HandoffBase: HANDOFF_BASE, HandoffSize: HANDOFF_SIZE,
		StickImageBase: STICK_IMAGE_BASE, StickImageMax: STICK_IMAGE_MAX,
		Stage0ImageBase: STAGE0_IMAGE_BASE, Stage0ImageMax: STAGE0_IMAGE_MAX,
	}
}

// MapMemory does nothing: in machine mode without PMP entries every
// address is accessible and QEMU models no caches.
func (virtBoard) MapMemory(start, end uint64, exec bool) {}

func jump(entry, handoff uint64)

func (virtBoard) Jump(entry, handoff uint64) { jump(entry, handoff) }
