// Package board is the contract every board fulfils for the firmware: the
// one thing firmware/stick and firmware/boot know about the machine they run
// on. A board package (board/qemu/virt, board/qemu/virtrv64) provides a
// Board; package board/target picks the one the build's TARGET tag names,
// as TamaGo's own examples pick theirs (one build tag per target).
//
// Importing a board package also wires the TamaGo runtime hooks (console
// output, clock, random source, RAM); this package only names what the
// firmware then calls. It has no build constraint, so that its types are
// documented and checked on the host too.
package board

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Board is what a board gives the firmware.
type Board interface {
	// Name identifies the board in the banner, the stick's status and
	// its measured configuration record: a verifier tells boards apart
	// by it.
	Name() string
	// CPU names the processor core.
	CPU() string

	// Console is the operator's serial port: Write sends, Read blocks
	// until at least one byte arrived.
	Console() io.ReadWriter
	// Uptime is the time since reset (the clock the runtime uses).
	Uptime() time.Duration
	// Entropy says where the random source is seeded from; the board
	// refuses to boot without one. ReseedFailures counts reseeds the
	// source did not answer.
	Entropy() string
	ReseedFailures() uint32

	// Devices lists the devices probed on the board's buses.
	Devices() []Device
	// OpenNet brings up the NIC: ErrNoNet when the board has none.
	OpenNet() (NIC, Device, error)
	// Link is the network the NIC is on: the stick's static address and
	// where the box's IPFS gateway answers.
	Link() Link
	// TPM finds the TPM behind the TIS register interface and returns
	// its registers, its address and its DID_VID: ErrNoTPM (wrapped)
	// when the board has none.
	TPM() (regs Registers, base uint64, didVid uint32, err error)

	// Exit stops the board; under QEMU code becomes QEMU's exit status.
	Exit(code int32)
	// Indicate shows the stick's state on the board's status indicator,
	// if the board has one (the QEMU boards have none).
	Indicate(State)

	// Memory is the board's memory map for stage 0 and the stick.
	Memory() Memory
	// MapMemory makes [start, end) normal memory for the running program
	// (cacheable, unaligned access allowed; executable or not) where the
	// board's memory protection maps it otherwise by default.
	MapMemory(start, end uint64, exec bool)
	// Jump starts a loaded image at entry with the hand-off block's
	// address as its first argument, after making the loaded bytes
	// visible to instruction fetch. It does not return.
	Jump(entry, handoff uint64)
}

// Interrupts is what a board that takes interrupts also offers: a check,
// run once at boot, that a timer interrupt reaches a goroutine.
type Interrupts interface {
	CheckInterrupts(d, timeout time.Duration) (late time.Duration, ok bool)
}

// Memory is a board's memory map as stage 0 and the stick see it. All
// addresses are physical.
type Memory struct {
	// Machine is the ELF machine of the images the board runs (EM_ARM
	// images are ELF32, EM_RISCV ones ELF64).
	Machine elf.Machine
	// RAMStart and RAMSize are the stick's runtime RAM.
	RAMStart, RAMSize uint64
	// LoadStart is the lowest address the stick's segments may occupy
	// (above what the board reserves at the start of RAM).
	LoadStart uint64
	// Handoff is where stage 0 leaves the measured-boot hand-off block
	// for the stick, outside both runtimes' RAM.
	HandoffBase, HandoffSize uint64
	// StickImage is where the stick image container is placed (under
	// QEMU by -device loader; on the USB armory Mk II in the boot
	// payload, where its directory says).
	StickImageBase, StickImageMax uint64
	// Stage0Image is where a copy of stage 0's own ELF file is placed:
	// stage 0 checks it is the running code and measures it.
	Stage0ImageBase, Stage0ImageMax uint64
}

// LoadEnd is the end of where the stick's segments may go: the end of its
// RAM, or the lowest of the two image windows that lie inside it (on the
// USB armory Mk II the boot payload's images sit at the top of the
// stick's RAM until the stick runs), so that stage 0 never copies the
// stick over the container it is copying from.
func (m Memory) LoadEnd() uint64 {
	end := m.RAMStart + m.RAMSize
	for _, w := range [][2]uint64{{m.StickImageBase, m.StickImageMax}, {m.Stage0ImageBase, m.Stage0ImageMax}} {
		if w[1] != 0 && w[0] >= m.LoadStart && w[0] < end {
			end = w[0]
		}
	}
	return end
}

// Device is a device found on the board: a virtio-mmio slot (Version is
// its transport version, never 0) or a device of the SoC (Version 0).
type Device struct {
	Slot    int
	Base    uint64
	ID      uint32
	Version uint32
	// Name is the device type's name.
	Name string
}

// String names the device as the banner lists it: name@base(slot n, vN)
// for a virtio-mmio slot, name@base for a SoC device, the name alone
// when it has no address.
func (d Device) String() string {
	switch {
	case d.Version != 0:
		return fmt.Sprintf("%s@%#x(slot %d, v%d)", d.Name, d.Base, d.Slot, d.Version)
	case d.Base != 0:
		return fmt.Sprintf("%s@%#x", d.Name, d.Base)
	}
	return d.Name
}

// NIC names a network device in the stick's net lines: "virtio-net slot
// n" for a virtio-mmio slot, its name otherwise.
func (d Device) NIC() string {
	if d.Version != 0 {
		return fmt.Sprintf("virtio-net slot %d", d.Slot)
	}
	return d.Name
}

// NIC is a network interface as the TCP/IP stack drives it: frames in
// and out (netstack.NIC).
type NIC interface {
	Transmit(frame []byte) error
	Receive(buf []byte) (n int, ok bool, err error)
	MAC() [6]byte
}

// Registers is a TPM's TIS register window (tis.Registers).
type Registers interface {
	Read8(off uint32) uint8
	Write8(off uint32, v uint8)
	Read32(off uint32) uint32
	Write32(off uint32, v uint32)
}

// State is what the status indicator shows.
type State int

const (
	// Booting: from reset until the stick serves.
	Booting State = iota
	// Serving: the API listens on the network.
	Serving
	// Failed: the stick stopped, or has no network to serve on.
	Failed
	// Quarantine: the API serves, but the stick was not measured: it
	// serves no actors (NOT MEASURED).
	Quarantine
)

// Link is the network a board's NIC is on.
type Link struct {
	// Address is the stick's static address and prefix; Gateway is the
	// next hop (the box, on a point-to-point link).
	Address netip.Prefix
	Gateway netip.Addr
	// BoxGateway is the URL of the box's IPFS gateway as the stick
	// reaches it.
	BoxGateway string
}

var (
	// ErrNoNet means the board has no network device.
	ErrNoNet = errors.New("board: no network device")
	// ErrNoTPM means the board has no TPM.
	ErrNoTPM = errors.New("board: no TPM")
)
