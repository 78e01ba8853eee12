// Package imx lays out the USB armory Mk II's boot payload: the flat
// bytes the i.MX boot ROM loads into DDR behind the image's IVT and DCD
// (mkimage -T imximage), holding stage 0 ready to run, stage 0's own ELF
// file and the stick image container (image/bootimg), and a directory
// saying where the two images are (board/usbarmory/mk2 reads it; its
// memory map is Mk2's).
//
// The images are packed against the end of their region, which ends where
// stage 0's RAM starts, so that the payload runs without gaps from its
// load address to the end of stage 0's file. The region may lie in the
// stick's RAM (it does on the Mk II): the images are dead once stage 0
// has loaded the stick, whose heap then reuses the memory, so Build only
// requires the stick's segments (.bss included) to end below the
// payload's load address, which stage 0 checks again at boot
// (board.Memory.LoadEnd):
//
//	Load (4 KiB aligned)     zeros up to the ELF copy
//	Stage0Base               stage 0's ELF file, byte for byte
//	ContainerBase            the stick image container
//	ImagesEnd - DirSize      the directory (Directory)
//	Stage0RAMStart           stage 0's vectors (zeros), then its segments'
//	                         file bytes, each at its address
//
// Stage 0's .bss is not in the payload: stage 0 clears it itself
// (board/usbarmory/mk2/cpuinit_arm.s). The ELF's entry becomes the IVT's
// entry (PatchEntry), as TamaGo's own Makefiles do after mkimage.
//
// References: i.MX 6ULL Applications Processor Reference Manual Rev. 1,
// 8.7 Program image (8.7.1 Image Vector Table, 8.7.1.1 Boot data
// structure).
package imx

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/teastick/teastick/image/bootimg"
	"github.com/teastick/teastick/tpm/measure"
)

// Layout is where a board's stage 0 runs and where its images go.
type Layout struct {
	// Stage0RAMStart and Stage0RAMEnd bound stage 0's runtime RAM: its
	// segments must lie inside. (Go's linker starts the first segment a
	// page below the text, with the ELF headers: they share the 64 KiB
	// the runtime later fills with vectors and page tables, as on the
	// QEMU boards.)
	Stage0RAMStart, Stage0RAMEnd uint64
	// ImagesStart and ImagesEnd bound the region of stage 0's ELF copy,
	// the container and the directory, which takes its last DirSize
	// bytes. ImagesEnd is at most Stage0RAMStart. The region may overlap
	// the stick's RAM: the stick's segments must then end below the
	// payload (Build).
	ImagesStart, ImagesEnd uint64
	// StickLoadStart and StickRAMEnd bound the stick's segments, as
	// stage 0 checks them. StickRAMEnd is at most Stage0RAMStart.
	StickLoadStart, StickRAMEnd uint64
}

// The USB armory Mk II's memory map (board/usbarmory/mk2/mem.go uses
// these constants): 512 MiB of DDR at 0x80000000. The stick's RAM runs
// up to stage 0's (464 MiB); until the stick runs, its top holds the
// boot payload's images (from Mk2ImagesStart at the lowest, packed
// against Mk2Stage0RAMStart), so that a stick image with native actors
// (84 MB with four) and its copy in the payload both fit (RATIONALE,
// "The Mk II's boot images lie in the stick's RAM"). Stage 0's RAM keeps
// 47 MiB, and the hand-off takes the last MiB of DDR: both outside the
// stick's RAM and outside the payload.
const (
	Mk2RAMStart       = 0x80000000
	Mk2RAMEnd         = 0xa0000000
	Mk2StickRAMSize   = Mk2Stage0RAMStart - Mk2RAMStart
	Mk2ImagesStart    = Mk2RAMStart + 0x10000
	Mk2Stage0RAMStart = 0x9d000000
	Mk2Stage0RAMSize  = Mk2HandoffBase - Mk2Stage0RAMStart
	Mk2HandoffBase    = Mk2RAMEnd - Mk2HandoffSize
	Mk2HandoffSize    = 0x00100000
)

// Mk2 is the USB armory Mk II's layout.
var Mk2 = Layout{
	Stage0RAMStart: Mk2Stage0RAMStart, Stage0RAMEnd: Mk2Stage0RAMStart + Mk2Stage0RAMSize,
	ImagesStart: Mk2ImagesStart, ImagesEnd: Mk2Stage0RAMStart,
	StickLoadStart: Mk2RAMStart, StickRAMEnd: Mk2RAMStart + Mk2StickRAMSize,
}

var (
	// ErrLayout means the layout's regions overlap or are out of order.
	ErrLayout = errors.New("imx: inconsistent layout")
	// ErrStage0 means stage 0's ELF file cannot be placed.
	ErrStage0 = errors.New("imx: stage 0 image unusable")
	// ErrStick means the stick container cannot be placed.
	ErrStick = errors.New("imx: stick image unusable")
	// ErrDirectory means the payload's directory is missing or wrong.
	ErrDirectory = errors.New("imx: bad boot payload directory")
	// ErrIVT means a boot image has no IVT where mkimage puts it.
	ErrIVT = errors.New("imx: no image vector table")
)

// DirMagic starts the directory; DirSize is its size.
const (
	DirMagic = "TSTKDIR1"
	DirSize  = 64
	// images are placed on this alignment
	imageAlign = 64
	loadAlign  = 0x1000
)

// Dir is what the directory says: where stage 0's ELF copy and the stick
// container are, and their lengths.
type Dir struct {
	Stage0Base, Stage0Len       uint64
	ContainerBase, ContainerLen uint64
}

// DirAddr is the directory's address.
func (l Layout) DirAddr() uint64 { return l.ImagesEnd - DirSize }

// Marshal encodes the directory: the magic, then the four fields as
// little-endian 64-bit words, then zeros.
func (d Dir) Marshal() []byte {
	b := make([]byte, DirSize)
	copy(b, DirMagic)
	le := binary.LittleEndian
	le.PutUint64(b[8:], d.Stage0Base)
	le.PutUint64(b[16:], d.Stage0Len)
	le.PutUint64(b[24:], d.ContainerBase)
	le.PutUint64(b[32:], d.ContainerLen)
	return b
}

// Directory decodes the directory b read at DirAddr and checks it: both
// images inside the images region below the directory, the ELF copy
// below the container, neither empty.
func (l Layout) Directory(b []byte) (Dir, error) {
	if len(b) < DirSize || string(b[:8]) != DirMagic {
		return Dir{}, fmt.Errorf("%w: no %s magic at %#x", ErrDirectory, DirMagic, l.DirAddr())
	}
	le := binary.LittleEndian
	d := Dir{le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]), le.Uint64(b[32:])}
	if !bytes.Equal(b[40:DirSize], make([]byte, DirSize-40)) {
		return Dir{}, fmt.Errorf("%w: reserved bytes set", ErrDirectory)
	}
	end := l.DirAddr()
	within := func(base, n uint64) bool { return base >= l.ImagesStart && base <= end && n <= end-base }
	switch {
	case d.Stage0Len == 0 || d.ContainerLen == 0:
		return Dir{}, fmt.Errorf("%w: an empty image", ErrDirectory)
	case !within(d.Stage0Base, d.Stage0Len) || !within(d.ContainerBase, d.ContainerLen):
		return Dir{}, fmt.Errorf("%w: images at %#x (%d bytes) and %#x (%d bytes) outside [%#x, %#x)", ErrDirectory,
			d.Stage0Base, d.Stage0Len, d.ContainerBase, d.ContainerLen, l.ImagesStart, end)
	case d.Stage0Base+d.Stage0Len > d.ContainerBase:
		return Dir{}, fmt.Errorf("%w: stage 0's ELF copy [%#x, %#x) runs into the container at %#x", ErrDirectory,
			d.Stage0Base, d.Stage0Base+d.Stage0Len, d.ContainerBase)
	}
	return d, nil
}

// Payload is a laid out boot payload.
type Payload struct {
	// Bytes are loaded at Load; Entry is stage 0's entry point.
	Bytes       []byte
	Load, Entry uint64
	Dir         Dir
	// Stage0End is where stage 0's segments end in memory, its .bss
	// included (the payload ends with their file bytes).
	Stage0End uint64
	// StickEnd is where the stick's segments end in memory once stage 0
	// has loaded them, its .bss included: at most Load.
	StickEnd uint64
}

// Check checks the layout's regions are in order: the images, then stage
// 0's RAM, above the start of the stick's RAM; the stick's RAM ends
// before stage 0's and may hold the images.
func (l Layout) Check() error {
	switch {
	case l.Stage0RAMStart >= l.Stage0RAMEnd:
		return fmt.Errorf("%w: stage 0 RAM [%#x, %#x) is empty", ErrLayout, l.Stage0RAMStart, l.Stage0RAMEnd)
	case l.ImagesStart+DirSize > l.ImagesEnd:
		return fmt.Errorf("%w: images region [%#x, %#x) holds no directory", ErrLayout, l.ImagesStart, l.ImagesEnd)
	case l.ImagesEnd > l.Stage0RAMStart:
		return fmt.Errorf("%w: images region ends at %#x, inside stage 0's RAM (from %#x)", ErrLayout, l.ImagesEnd, l.Stage0RAMStart)
	case l.StickRAMEnd > l.Stage0RAMStart:
		return fmt.Errorf("%w: the stick's RAM [%#x, %#x) overlaps stage 0's (from %#x)", ErrLayout, l.StickLoadStart, l.StickRAMEnd, l.Stage0RAMStart)
	case l.ImagesStart < l.StickLoadStart:
		return fmt.Errorf("%w: images region from %#x, below the stick's RAM (from %#x)", ErrLayout, l.ImagesStart, l.StickLoadStart)
	}
	return nil
}

func alignDown(v, a uint64) uint64 { return v &^ (a - 1) }

// Build lays out stage 0's ELF file and the stick container. It checks
// what stage 0 will check at boot: its own segments in its RAM, the
// container opens and its ELF loads into the stick's RAM.
func Build(l Layout, stage0, container []byte) (*Payload, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	plan, err := bootimg.NewPlanFor(elf.EM_ARM, stage0, l.Stage0RAMStart, l.Stage0RAMEnd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStage0, err)
	}
	stick, _, err := bootimg.Open(container, len(container))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStick, err)
	}
	stickPlan, err := bootimg.NewPlanFor(elf.EM_ARM, stick, l.StickLoadStart, l.StickRAMEnd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStick, err)
	}
	stickEnd := uint64(0)
	for _, s := range stickPlan.Segments {
		stickEnd = max(stickEnd, s.Addr+uint64(len(s.File))+s.Zero)
	}
	dirAddr := l.DirAddr()
	room := dirAddr - l.ImagesStart
	if uint64(len(container))+imageAlign > room || uint64(len(stage0))+2*imageAlign+loadAlign > room-uint64(len(container)) {
		return nil, fmt.Errorf("%w: stage 0's ELF (%d bytes) and the container (%d bytes) exceed the %d bytes of [%#x, %#x)",
			ErrStick, len(stage0), len(container), room, l.ImagesStart, dirAddr)
	}
	d := Dir{ContainerLen: uint64(len(container)), Stage0Len: uint64(len(stage0))}
	d.ContainerBase = alignDown(dirAddr-d.ContainerLen, imageAlign)
	d.Stage0Base = alignDown(d.ContainerBase-d.Stage0Len, imageAlign)
	load := alignDown(d.Stage0Base, loadAlign)
	fileEnd, memEnd := uint64(0), uint64(0)
	for _, s := range plan.Segments {
		fileEnd = max(fileEnd, s.Addr+uint64(len(s.File)))
		memEnd = max(memEnd, s.Addr+uint64(len(s.File))+s.Zero)
	}
	if stickEnd > load {
		// stage 0 would copy the stick over its own source
		return nil, fmt.Errorf("%w: the stick's segments end at %#x (.bss included), above the payload's start at %#x: "+
			"the stick in memory (%d bytes) and the images in the payload (%d bytes) exceed the %d bytes of [%#x, %#x) by %d",
			ErrStick, stickEnd, load, stickEnd-l.StickLoadStart, dirAddr+DirSize-load, l.ImagesEnd-l.StickLoadStart,
			l.StickLoadStart, l.ImagesEnd, stickEnd-load)
	}
	p := &Payload{Load: load, Entry: plan.Entry, Dir: d, Stage0End: memEnd, StickEnd: stickEnd, Bytes: make([]byte, fileEnd-load)}
	for _, s := range plan.Segments {
		copy(p.Bytes[s.Addr-load:], s.File)
	}
	copy(p.Bytes[d.Stage0Base-load:], stage0)
	copy(p.Bytes[d.ContainerBase-load:], container)
	copy(p.Bytes[dirAddr-load:], d.Marshal())
	return p, nil
}

// Split returns the stage 0 ELF copy and the container from a payload
// loaded at load, as stage 0 finds them through the directory.
func (l Layout) Split(payload []byte, load uint64) (stage0, container []byte, err error) {
	at := l.DirAddr()
	if at < load || at-load+DirSize > uint64(len(payload)) {
		return nil, nil, fmt.Errorf("%w: payload of %d bytes at %#x does not reach the directory at %#x", ErrDirectory, len(payload), load, at)
	}
	d, err := l.Directory(payload[at-load:])
	if err != nil {
		return nil, nil, err
	}
	if d.Stage0Base < load {
		return nil, nil, fmt.Errorf("%w: stage 0's ELF copy at %#x, below the payload's load address %#x", ErrDirectory, d.Stage0Base, load)
	}
	file, err := measure.Stage0File(payload[d.Stage0Base-load : d.Stage0Base-load+d.Stage0Len])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrStage0, err)
	}
	c := payload[d.ContainerBase-load : d.ContainerBase-load+d.ContainerLen]
	if _, _, err := bootimg.Open(c, len(c)); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrStick, err)
	}
	return file, c, nil
}

// IVT fields (IMX6ULLRM 8.7.1, Table 8-28): the .imx file mkimage writes
// starts with the IVT (it sits 1 KiB into the boot device).
const (
	ivtTag     = 0xd1
	ivtEntry   = 4
	ivtSelf    = 20
	ivtSize    = 32
	bootStart  = 0 // boot data: start, length, plugin (8.7.1.1)
	bootLength = 4
)

// Header is what a boot image's IVT and boot data say.
type Header struct {
	Entry, Self, BootStart, BootLength uint32
	// PayloadOffset is where the payload starts in the file.
	PayloadOffset int
}

// ReadHeader reads the IVT at the start of a .imx file and its boot data.
func ReadHeader(img []byte) (Header, error) {
	if len(img) < ivtSize || img[0] != ivtTag {
		return Header{}, ErrIVT
	}
	h := Header{
		Entry: binary.LittleEndian.Uint32(img[ivtEntry:]),
		Self:  binary.LittleEndian.Uint32(img[ivtSelf:]),
	}
	bd := binary.LittleEndian.Uint32(img[16:])
	if bd < h.Self || uint64(bd-h.Self)+8 > uint64(len(img)) {
		return Header{}, fmt.Errorf("%w: boot data pointer %#x outside the file", ErrIVT, bd)
	}
	off := bd - h.Self
	h.BootStart = binary.LittleEndian.Uint32(img[off+bootStart:])
	h.BootLength = binary.LittleEndian.Uint32(img[off+bootLength:])
	return h, nil
}

// PayloadAt returns the file offset where the payload loaded at load sits
// in img: the file starts with the IVT, which the boot ROM loads to its
// Self address.
func PayloadAt(img []byte, load uint64) (int, error) {
	h, err := ReadHeader(img)
	if err != nil {
		return 0, err
	}
	// the file starts at the IVT, loaded at Self
	if load < uint64(h.Self) || load-uint64(h.Self) >= uint64(len(img)) {
		return 0, fmt.Errorf("%w: load address %#x not in the image loaded at %#x", ErrIVT, load, h.Self)
	}
	return int(load - uint64(h.Self)), nil
}

// PatchEntry sets the IVT's entry of a .imx file (mkimage was given the
// payload's load address) to entry, after checking that the payload sits
// in the file where the IVT says it is loaded.
func PatchEntry(img []byte, p *Payload) error {
	off, err := PayloadAt(img, p.Load)
	if err != nil {
		return err
	}
	if off+len(p.Bytes) > len(img) || !bytes.Equal(img[off:off+len(p.Bytes)], p.Bytes) {
		return fmt.Errorf("%w: the payload is not at file offset %#x (address %#x)", ErrIVT, off, p.Load)
	}
	binary.LittleEndian.PutUint32(img[ivtEntry:], uint32(p.Entry))
	return nil
}
