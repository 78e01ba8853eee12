//go:build tamago && arm

package virt

import (
	"debug/elf"
	"fmt"
	"io"
	"time"

	"github.com/usbarmory/tamago/arm"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/qemu/vmmio"
)

// Board is this board behind the firmware's contract.
var Board board.Board = virtBoard{}

var (
	_ board.Board      = virtBoard{}
	_ board.Interrupts = virtBoard{}
)

type virtBoard struct{}

func (virtBoard) Name() string { return Name }
func (virtBoard) CPU() string  { return "cortex-a7" }

func (virtBoard) Console() io.ReadWriter { return UART0 }
func (virtBoard) Uptime() time.Duration  { return time.Duration(ARM.GetTime()) }
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
		Machine:  elf.EM_ARM,
		RAMStart: RAM_START, RAMSize: RAM_SIZE,
		LoadStart:   VECTOR_BASE,
		HandoffBase: HANDOFF_BASE, HandoffSize: HANDOFF_SIZE,
		StickImageBase: STICK_IMAGE_BASE, StickImageMax: STICK_IMAGE_MAX,
		Stage0ImageBase: STAGE0_IMAGE_BASE, Stage0ImageMax: STAGE0_IMAGE_MAX,
	}
}

// MapMemory maps [start, end) as normal memory in the MMU's sections:
// outside its runtime RAM tamago maps everything as device memory.
func (virtBoard) MapMemory(start, end uint64, exec bool) {
	flags := uint32(arm.MemoryRegion)
	if !exec {
		flags |= arm.TTE_EXECUTE_NEVER
	}
	ARM.ConfigureMMU(uint32(start), uint32(end), 0, flags)
}

func (virtBoard) Jump(entry, handoff uint64) { Jump(uint32(entry), uint32(handoff)) }

func (virtBoard) CheckInterrupts(d, timeout time.Duration) (time.Duration, bool) {
	return CheckInterrupts(d, timeout)
}
