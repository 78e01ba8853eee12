//go:build tamago && arm

// Package mk2 is the USB armory Mk II (NXP i.MX6ULZ, one Cortex-A7, 512 MiB
// DDR3) behind the firmware's board contract: a thin shell over TamaGo's
// board/usbarmory/mk2 and soc/nxp/imx6ul, which it imports for their
// runtime hooks (processor, MMU and caches, timer, UART2 console, the RNGB
// as random source).
//
// The same image also runs under QEMU's mcimx6ul-evk machine (the boot
// test). That machine emulates no RNGB, no USB device controller and no
// TPM; tamago's imx6ul.Native tells it apart, and an emulated board
// refuses to be measured or to serve (entropy.go).
//
// Build with the usbarmory_mk2, linkramstart and linkramsize tags (the
// Makefile's TARGET=usbarmory): the last two leave the runtime's RAM
// region to this package (ram.go, ram_stage0.go).
//
// This package is only meant to be used with `GOOS=tamago GOARCH=arm`.
package mk2

import (
	"debug/elf"
	"io"
	"time"

	"github.com/usbarmory/tamago/arm"
	usbarmory "github.com/usbarmory/tamago/board/usbarmory/mk2"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/armv7"
)

// The alignment check stays off whatever ran before (the boot ROM, stage
// 0): translated actors access words at any address (armv7).
func init() { armv7.AllowUnalignedAccess() }

// Name identifies the board in the banner and in the stick's status.
const Name = "usbarmory-mk2"

// Board is this board behind the firmware's contract.
var Board board.Board = mk2Board{}

var _ board.Board = mk2Board{}

type mk2Board struct{}

func (mk2Board) Name() string { return Name }
func (mk2Board) CPU() string  { return "cortex-a7" }

// Console is UART2, on the debug accessory (tamago's printk writes there
// too).
func (mk2Board) Console() io.ReadWriter { return console{} }

func (mk2Board) Uptime() time.Duration { return time.Duration(imx6ul.ARM.GetTime()) }

func (mk2Board) Entropy() string        { return Entropy() }
func (mk2Board) ReseedFailures() uint32 { return 0 }

// Devices lists what the board found: the SoC and the Mk II model.
func (mk2Board) Devices() []board.Device {
	if !imx6ul.Native {
		// the model is fused in OTP, which emulation lacks
		return []board.Device{{Name: imx6ul.Model() + "-emulated"}}
	}
	_, model := usbarmory.Model()
	return []board.Device{{Name: imx6ul.Model() + "-" + model}}
}

func (mk2Board) OpenNet() (board.NIC, board.Device, error) { return OpenNet() }

func (mk2Board) TPM() (board.Registers, uint64, uint32, error) { return ProbeTPM() }

func (mk2Board) Link() board.Link { return USBLink }

func (mk2Board) Exit(code int32) { Exit(code) }

func (mk2Board) Indicate(s board.State) { Indicate(s) }

// Memory is the board's memory map (mem.go); where stage 0's ELF copy and
// the stick container are comes from the boot payload's directory. A
// missing or bad directory is said on stage 0's console, and both windows
// are empty (the stick needs only the hand-off).
func (mk2Board) Memory() board.Memory {
	d, err := imagesDir()
	if err != nil && stage0 {
		print(err.Error(), "\n")
	}
	return board.Memory{
		Machine:  elf.EM_ARM,
		RAMStart: RAM_START, RAMSize: RAM_SIZE,
		LoadStart:   RAM_START,
		HandoffBase: HANDOFF_BASE, HandoffSize: HANDOFF_SIZE,
		StickImageBase: d.ContainerBase, StickImageMax: d.ContainerLen,
		Stage0ImageBase: d.Stage0Base, Stage0ImageMax: d.Stage0Len,
	}
}

// MapMemory maps [start, end) as normal memory in the MMU's 1 MiB
// sections (end rounded up): outside its runtime RAM tamago maps
// everything as device memory.
func (mk2Board) MapMemory(start, end uint64, exec bool) {
	end = (end + 1<<20 - 1) &^ (1<<20 - 1)
	flags := uint32(arm.MemoryRegion)
	if !exec {
		flags |= arm.TTE_EXECUTE_NEVER
	}
	imx6ul.ARM.ConfigureMMU(uint32(start), uint32(end), 0, flags)
}

func (mk2Board) Jump(entry, handoff uint64) { Jump(uint32(entry), uint32(handoff)) }

// console is UART2 with the contract's blocking Read.
type console struct{}

func (console) Write(b []byte) (int, error) { return board.WriteBytes(imx6ul.UART2.Tx, b) }
func (console) Read(b []byte) (int, error)  { return board.PollRead(imx6ul.UART2.Rx, b) }
