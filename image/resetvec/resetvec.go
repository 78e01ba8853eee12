// Package resetvec gives a RISC-V ELF executable a reset vector: two
// instructions at a fixed address that jump to the ELF's entry point.
//
// QEMU's riscv64 virt machine started with -bios none jumps to the start
// of RAM (0x80000000) in machine mode whatever the ELF's entry point is,
// and the Go linker puts there whichever function it lays out first. Add
// turns the ELF's PT_GNU_STACK program header (meaningless on bare metal)
// into a PT_LOAD segment of 8 bytes, appended to the file, placed at the
// reset address: AUIPC t0 and JALR x0 to the entry (The RISC-V Instruction
// Set Manual, Volume I, 2.4 Integer Computational Instructions (AUIPC) and
// 2.5 Control Transfer Instructions (JALR)). Nothing else in the file
// changes, so its other segments stay what the linker made.
package resetvec

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

var (
	// ErrELF means the file is not a little-endian RISC-V ELF64
	// executable.
	ErrELF = errors.New("resetvec: not a little-endian RISC-V ELF64 executable")
	// ErrNoSpareHeader means the file has no PT_GNU_STACK program header
	// to reuse (for example, Add ran on it already).
	ErrNoSpareHeader = errors.New("resetvec: no PT_GNU_STACK program header to reuse")
	// ErrPlacement means the reset vector cannot be placed: it overlaps
	// a segment, or the entry is out of a JALR's reach.
	ErrPlacement = errors.New("resetvec: cannot place the reset vector")
)

// Size is the reset vector's size in bytes.
const Size = 8

// ELF64 program header layout (System V ABI, "Program Header").
const (
	phdrSize = 56
	ptLoad   = 1
	pfX, pfR = 1, 4
)

// Add returns file with a reset vector at addr that jumps to its entry.
func Add(file []byte, addr uint64) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(file))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrELF, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_RISCV || f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("%w: %v %v %v %v", ErrELF, f.Class, f.Data, f.Machine, f.Type)
	}
	spare := -1
	for i, p := range f.Progs {
		if p.Type == elf.PT_GNU_STACK {
			spare = i
			break
		}
	}
	if spare < 0 {
		return nil, ErrNoSpareHeader
	}
	for i, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr < p.Paddr+p.Memsz && p.Paddr < addr+Size {
			return nil, fmt.Errorf("%w: %#x overlaps segment %d at %#x", ErrPlacement, addr, i, p.Paddr)
		}
	}
	off := int64(f.Entry) - int64(addr)
	if off < -(1<<31) || off >= 1<<31-1<<11 {
		return nil, fmt.Errorf("%w: entry %#x is beyond reach of %#x", ErrPlacement, f.Entry, addr)
	}
	le := binary.LittleEndian
	out := bytes.Clone(file)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	codeOff := uint64(len(out))
	out = le.AppendUint32(out, auipc(5, off))
	out = le.AppendUint32(out, jalr(0, 5, off))

	phoff := le.Uint64(file[32:])
	ph := out[phoff+uint64(spare)*phdrSize:][:phdrSize]
	le.PutUint32(ph[0:], ptLoad)
	le.PutUint32(ph[4:], pfR|pfX)
	le.PutUint64(ph[8:], codeOff)
	le.PutUint64(ph[16:], addr)
	le.PutUint64(ph[24:], addr)
	le.PutUint64(ph[32:], Size)
	le.PutUint64(ph[40:], Size)
	le.PutUint64(ph[48:], 8)
	return out, nil
}

// hi20 and lo12 split a PC-relative offset so that hi20<<12 + lo12 == off
// with lo12 sign-extended.
func split(off int64) (hi20, lo12 int64) {
	hi20 = (off + 0x800) >> 12
	return hi20, off - hi20<<12
}

// auipc encodes AUIPC rd, hi20(off) (U-type, opcode 0010111).
func auipc(rd uint32, off int64) uint32 {
	hi, _ := split(off)
	return uint32(hi&0xfffff)<<12 | rd<<7 | 0x17
}

// jalr encodes JALR rd, lo12(off)(rs1) (I-type, opcode 1100111, funct3 0).
func jalr(rd, rs1 uint32, off int64) uint32 {
	_, lo := split(off)
	return uint32(lo&0xfff)<<20 | rs1<<15 | rd<<7 | 0x67
}

// Target decodes the reset vector at the start of code (as Add writes it,
// placed at addr) and returns the address it jumps to.
func Target(code []byte, addr uint64) (uint64, error) {
	if len(code) < Size {
		return 0, fmt.Errorf("%w: %d bytes", ErrPlacement, len(code))
	}
	le := binary.LittleEndian
	a, j := le.Uint32(code), le.Uint32(code[4:])
	if a&0x7f != 0x17 || j&0x707f != 0x67 || (a>>7)&0x1f != (j>>15)&0x1f {
		return 0, fmt.Errorf("%w: not AUIPC+JALR through one register: %#08x %#08x", ErrPlacement, a, j)
	}
	hi := int64(int32(a & 0xfffff000))
	lo := int64(int32(j) >> 20)
	return uint64(int64(addr) + hi + lo), nil
}
