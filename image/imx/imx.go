// Package imx lays out the USB armory Mk II's boot payload: the flat
// bytes the i.MX boot ROM loads into DDR behind the image's IVT and DCD
// (mkimage -T imximage), holding stage 0 ready to run, stage 0's own ELF
// file and the stick image container (image/bootimg) at the addresses
// stage 0 looks for them (board/usbarmory/mk2 takes them from Mk2).
//
// The payload starts at stage 0's lowest segment and runs contiguously to
// the end of the container:
//
//	Load                      stage 0's segments, each at its address, its
//	                          zero-filled remainder (.bss) included
//	Stage0ImageBase           stage 0's ELF file, byte for byte
//	StickImageBase            the stick image container
//
// with zeros in between. The ELF's entry becomes the IVT's entry
// (PatchEntry), as TamaGo's own Makefiles do after mkimage.
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

// Layout is where a board's stage 0 runs and finds its images.
type Layout struct {
	// Stage0RAMStart and Stage0RAMEnd bound stage 0's runtime RAM: its
	// segments must lie inside. (Go's linker starts the first segment a
	// page below the text, with the ELF headers: they share the 64 KiB
	// the runtime later fills with vectors and page tables, as on the
	// QEMU boards.)
	Stage0RAMStart, Stage0RAMEnd uint64
	// Stage0ImageBase/Max and StickImageBase/Max are the windows of
	// stage 0's ELF copy and of the stick container.
	Stage0ImageBase, Stage0ImageMax uint64
	StickImageBase, StickImageMax   uint64
	// StickLoadStart and StickRAMEnd bound the stick's segments, as
	// stage 0 checks them.
	StickLoadStart, StickRAMEnd uint64
}

// The USB armory Mk II's memory map (board/usbarmory/mk2/mem.go uses
// these constants): 512 MiB of DDR at 0x80000000; the top 64 KiB are left
// to the boot ROM, which loads the boot image's CSF area (mkimage's CSF
// 0x4000) behind the payload.
const (
	Mk2RAMStart       = 0x80000000
	Mk2RAMEnd         = 0xa0000000
	Mk2StickRAMSize   = 0x18000000
	Mk2HandoffBase    = 0x98000000
	Mk2HandoffSize    = 0x00100000
	Mk2Stage0RAMStart = 0x98100000
	Mk2Stage0RAMSize  = 0x03000000
	Mk2Stage0Image    = 0x9b100000
	Mk2Stage0ImageMax = 0x00800000
	Mk2StickImage     = 0x9b900000
	Mk2BootROMReserve = 0x10000
	Mk2StickImageMax  = Mk2RAMEnd - Mk2BootROMReserve - Mk2StickImage
)

// Mk2 is the USB armory Mk II's layout.
var Mk2 = Layout{
	Stage0RAMStart: Mk2Stage0RAMStart, Stage0RAMEnd: Mk2Stage0RAMStart + Mk2Stage0RAMSize,
	Stage0ImageBase: Mk2Stage0Image, Stage0ImageMax: Mk2Stage0ImageMax,
	StickImageBase: Mk2StickImage, StickImageMax: Mk2StickImageMax,
	StickLoadStart: Mk2RAMStart, StickRAMEnd: Mk2RAMStart + Mk2StickRAMSize,
}

var (
	// ErrLayout means the layout's windows overlap or are out of order.
	ErrLayout = errors.New("imx: inconsistent layout")
	// ErrStage0 means stage 0's ELF file cannot be placed.
	ErrStage0 = errors.New("imx: stage 0 image unusable")
	// ErrStick means the stick container cannot be placed.
	ErrStick = errors.New("imx: stick image unusable")
	// ErrIVT means a boot image has no IVT where mkimage puts it.
	ErrIVT = errors.New("imx: no image vector table")
)

// Payload is a laid out boot payload.
type Payload struct {
	// Bytes are loaded at Load; Entry is stage 0's entry point.
	Bytes       []byte
	Load, Entry uint64
	// Stage0Mem is how far stage 0's segments reach from Load;
	// Stage0File and Container the sizes of the two images.
	Stage0Mem             uint64
	Stage0File, Container int
}

// Check checks the layout's windows are in order: stage 0's RAM, its ELF
// copy, the container, none overlapping.
func (l Layout) Check() error {
	switch {
	case l.Stage0RAMStart >= l.Stage0RAMEnd:
		return fmt.Errorf("%w: stage 0 RAM [%#x, %#x) is empty", ErrLayout, l.Stage0RAMStart, l.Stage0RAMEnd)
	case l.Stage0ImageBase < l.Stage0RAMEnd:
		return fmt.Errorf("%w: stage 0 image at %#x inside stage 0's RAM (ends %#x)", ErrLayout, l.Stage0ImageBase, l.Stage0RAMEnd)
	case l.StickImageBase < l.Stage0ImageBase+l.Stage0ImageMax:
		return fmt.Errorf("%w: stick image at %#x inside stage 0's image window [%#x, %#x)", ErrLayout, l.StickImageBase, l.Stage0ImageBase, l.Stage0ImageBase+l.Stage0ImageMax)
	case l.StickRAMEnd > l.Stage0RAMStart && l.StickLoadStart < l.StickImageBase+l.StickImageMax:
		return fmt.Errorf("%w: the stick's RAM [%#x, %#x) overlaps the boot payload", ErrLayout, l.StickLoadStart, l.StickRAMEnd)
	}
	return nil
}

// Build lays out stage 0's ELF file and the stick container. It checks
// what stage 0 will check at boot: the container opens and its ELF loads
// into the stick's RAM.
func Build(l Layout, stage0, container []byte) (*Payload, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	plan, err := bootimg.NewPlanFor(elf.EM_ARM, stage0, l.Stage0RAMStart, l.Stage0RAMEnd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStage0, err)
	}
	if uint64(len(stage0)) > l.Stage0ImageMax {
		return nil, fmt.Errorf("%w: %d bytes, its window holds %d", ErrStage0, len(stage0), l.Stage0ImageMax)
	}
	stick, _, err := bootimg.Open(container, int(min(l.StickImageMax, 1<<31)-bootimg.HeaderSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStick, err)
	}
	if uint64(len(container)) > l.StickImageMax {
		return nil, fmt.Errorf("%w: %d bytes, its window holds %d", ErrStick, len(container), l.StickImageMax)
	}
	if _, err := bootimg.NewPlanFor(elf.EM_ARM, stick, l.StickLoadStart, l.StickRAMEnd); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStick, err)
	}
	load, end := ^uint64(0), uint64(0)
	for _, s := range plan.Segments {
		load = min(load, s.Addr)
		end = max(end, s.Addr+uint64(len(s.File))+s.Zero)
	}
	p := &Payload{Load: load, Entry: plan.Entry, Stage0Mem: end - load, Stage0File: len(stage0), Container: len(container)}
	p.Bytes = make([]byte, l.StickImageBase+uint64(len(container))-load)
	for _, s := range plan.Segments {
		copy(p.Bytes[s.Addr-load:], s.File)
	}
	copy(p.Bytes[l.Stage0ImageBase-load:], stage0)
	copy(p.Bytes[l.StickImageBase-load:], container)
	return p, nil
}

// Split returns the stage 0 ELF copy and the container from a payload
// loaded at load, as stage 0 finds them (the container cut to its
// header's length).
func (l Layout) Split(payload []byte, load uint64) (stage0, container []byte, err error) {
	if load > l.Stage0ImageBase || l.StickImageBase-load > uint64(len(payload)) {
		return nil, nil, fmt.Errorf("%w: payload of %d bytes at %#x does not reach the stick image at %#x", ErrStick, len(payload), load, l.StickImageBase)
	}
	win := payload[l.Stage0ImageBase-load : l.StickImageBase-load]
	file, err := measure.Stage0File(win)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrStage0, err)
	}
	c := payload[l.StickImageBase-load:]
	if _, _, err := bootimg.Open(c, len(c)); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrStick, err)
	}
	n := bootimg.HeaderSize + int(binary.LittleEndian.Uint64(c[16:24]))
	return file, c[:n], nil
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
