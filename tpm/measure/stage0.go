package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/teastick/teastick/tpm/eventlog"
)

// Stage 0 measures itself first, as a static root of trust for measurement
// does (PFP 3.3.4.1, PCR[0]: the S-CRTM measures its own contents): it
// extends the SHA-256 of its own ELF file, the file the release manifest
// names by digest (stage0_sha256), into PCR 0 as EV_S_CRTM_CONTENTS, before
// it reads the stick image.
//
// Stage 0 runs from the segments its loader placed (QEMU -kernel, or the
// boot ROM), not from the file, so the loader also places the file itself
// in memory (under QEMU a -device loader copy) and stage 0 checks that its
// running code and read-only data are byte for byte that file's read-only
// loadable segments (CheckStage0) before it extends the file's digest. A
// verifier then needs only the file's digest: the manifest's, or SHA-256 of
// the bundle's boot.elf. See RATIONALE.md "Stage 0 measures itself".

// PCRStage0 holds stage 0's own measurement, then the hand-off separator.
const PCRStage0 = 0

// NoStage0 is the stage 0 digest of a stick that no stage 0 loaded: the
// hosted stick, which the host's operating system starts. Its manifests
// name stage 0 as all zeros; no file hashes to it.
var NoStage0 [sha256.Size]byte

// ErrStage0 means stage 0's image is missing, malformed or not the running
// stage 0.
var ErrStage0 = errors.New("measure: stage 0 image")

// MeasureStage0 extends stage 0's digest into PCR 0 as EV_S_CRTM_CONTENTS;
// desc (for example "teastick stage0 v1.2.0") becomes the event data.
func (m *Measurer) MeasureStage0(digest [sha256.Size]byte, desc string) error {
	return m.Extend(PCRStage0, eventlog.EV_S_CRTM_CONTENTS, digest, []byte(desc))
}

// Region is a range of memory as stage 0 runs: its code or read-only data.
type Region struct {
	Addr  uint64
	Bytes []byte
}

// ELF constants (System V ABI, "Object Files": ELF Header, Sections,
// Program Header; ELF-64 Object File Format 1.5 for the 64-bit layout).
const (
	elfHeaderSize = 52
	elfPhdrSize   = 32
	elfShdrSize   = 40
	elf64Header   = 64
	elf64Phdr     = 56
	elf64Shdr     = 64
	ptLoad        = 1
	pfW           = 2
	shtNobits     = 8
	emARM         = 40
	emRISCV       = 243
	// maxELFHeaders bounds the header tables of an untrusted file.
	maxELFHeaders = 256
)

type elfSegment struct {
	off, vaddr, filesz uint64
	writable           bool
}

// elfLayout is where an ELF class keeps the fields parseELF reads.
type elfLayout struct {
	class, machine                byte
	machineID                     uint16
	machineName                   string
	header, phdr, shdr            uint64
	phoff, shoff, phent           int
	word                          func([]byte) uint64
	pOff, pVaddr, pFilesz, pFlags int
	sType, sOff, sSize            int
}

var (
	le32 = func(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b)) }
	le64 = func(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
	// ELF32 on ARM (stage 0 of the arm boards)
	elf32ARM = elfLayout{class: 1, machineID: emARM, machineName: "ARM", header: elfHeaderSize, phdr: elfPhdrSize, shdr: elfShdrSize,
		phoff: 28, shoff: 32, phent: 42, word: le32, pOff: 4, pVaddr: 8, pFilesz: 16, pFlags: 24, sType: 4, sOff: 16, sSize: 20}
	// ELF64 on RISC-V (stage 0 of the riscv64 boards)
	elf64RISCV = elfLayout{class: 2, machineID: emRISCV, machineName: "RISC-V", header: elf64Header, phdr: elf64Phdr, shdr: elf64Shdr,
		phoff: 32, shoff: 40, phent: 54, word: le64, pOff: 8, pVaddr: 16, pFilesz: 32, pFlags: 4, sType: 4, sOff: 24, sSize: 32}
)

// parseELF reads a little-endian ELF32 ARM or ELF64 RISC-V executable at
// the start of b and returns its loadable segments and the end of its last
// header table, section or segment.
func parseELF(b []byte) ([]elfSegment, uint64, error) {
	if len(b) < elfHeaderSize || !bytes.Equal(b[:4], []byte("\x7fELF")) || b[5] != 1 {
		return nil, 0, fmt.Errorf("%w: not a little-endian ELF file", ErrStage0)
	}
	var l elfLayout
	switch b[4] {
	case 1:
		l = elf32ARM
	case 2:
		l = elf64RISCV
	default:
		return nil, 0, fmt.Errorf("%w: ELF class %d", ErrStage0, b[4])
	}
	if uint64(len(b)) < l.header {
		return nil, 0, fmt.Errorf("%w: truncated ELF header", ErrStage0)
	}
	le := binary.LittleEndian
	if m := le.Uint16(b[18:]); m != l.machineID {
		return nil, 0, fmt.Errorf("%w: machine %d, want %s for ELF class %d", ErrStage0, m, l.machineName, b[4])
	}
	phoff, shoff := l.word(b[l.phoff:]), l.word(b[l.shoff:])
	phentsize, phnum := uint64(le.Uint16(b[l.phent:])), uint64(le.Uint16(b[l.phent+2:]))
	shentsize, shnum := uint64(le.Uint16(b[l.phent+4:])), uint64(le.Uint16(b[l.phent+6:]))
	if phnum == 0 || phnum > maxELFHeaders || shnum > maxELFHeaders || phentsize != l.phdr || (shnum > 0 && shentsize != l.shdr) {
		return nil, 0, fmt.Errorf("%w: %d program headers of %d bytes, %d section headers of %d bytes", ErrStage0, phnum, phentsize, shnum, shentsize)
	}
	size := uint64(len(b))
	end := l.header
	within := func(off, n uint64) bool { return off <= size && n <= size-off }
	if !within(phoff, phnum*l.phdr) || !within(shoff, shnum*l.shdr) {
		return nil, 0, fmt.Errorf("%w: header tables beyond the image", ErrStage0)
	}
	end = max(end, phoff+phnum*l.phdr, shoff+shnum*l.shdr)
	var segs []elfSegment
	for i := range phnum {
		p := b[phoff+i*l.phdr:]
		s := elfSegment{off: l.word(p[l.pOff:]), vaddr: l.word(p[l.pVaddr:]), filesz: l.word(p[l.pFilesz:]),
			writable: le.Uint32(p[l.pFlags:])&pfW != 0}
		if le.Uint32(p[0:]) != ptLoad {
			continue
		}
		if !within(s.off, s.filesz) {
			return nil, 0, fmt.Errorf("%w: segment %d beyond the image", ErrStage0, i)
		}
		end = max(end, s.off+s.filesz)
		segs = append(segs, s)
	}
	for i := range shnum {
		sh := b[shoff+i*l.shdr:]
		if le.Uint32(sh[l.sType:]) == shtNobits {
			continue
		}
		off, n := l.word(sh[l.sOff:]), l.word(sh[l.sSize:])
		if !within(off, n) {
			return nil, 0, fmt.Errorf("%w: section %d beyond the image", ErrStage0, i)
		}
		end = max(end, off+n)
	}
	return segs, end, nil
}

// Stage0File returns the ELF file at the start of b, which may extend
// beyond it (a memory window): the file ends where the last of its header
// tables, sections and segments ends, as a Go-linked ELF does (the release
// tool checks that of every stage 0 it publishes).
func Stage0File(b []byte) ([]byte, error) {
	_, end, err := parseELF(b)
	if err != nil {
		return nil, err
	}
	return b[:end], nil
}

// CheckStage0 checks that every running region lies within one read-only
// loadable segment of file and equals that segment's bytes there: the file
// is the code and read-only data that run. Writable data is not compared
// (the runtime has changed it by then).
func CheckStage0(file []byte, running []Region) error {
	segs, end, err := parseELF(file)
	if err != nil {
		return err
	}
	if end != uint64(len(file)) {
		return fmt.Errorf("%w: %d bytes after the ELF's last part", ErrStage0, uint64(len(file))-end)
	}
	if len(running) == 0 {
		return fmt.Errorf("%w: no running regions to compare", ErrStage0)
	}
	for _, r := range running {
		lo, hi := uint64(r.Addr), uint64(r.Addr)+uint64(len(r.Bytes))
		found := false
		for _, s := range segs {
			if s.writable || lo < s.vaddr || hi > s.vaddr+s.filesz {
				continue
			}
			found = true
			at := s.off + (lo - s.vaddr)
			if !bytes.Equal(file[at:at+uint64(len(r.Bytes))], r.Bytes) {
				return fmt.Errorf("%w: running bytes at %#x-%#x differ from the image", ErrStage0, lo, hi)
			}
			break
		}
		if !found {
			return fmt.Errorf("%w: running region %#x-%#x is in no read-only segment of the image", ErrStage0, lo, hi)
		}
	}
	return nil
}
