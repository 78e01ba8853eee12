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

// ELF32 constants (System V ABI, "Object Files": ELF Header, Sections,
// Program Header).
const (
	elfHeaderSize = 52
	elfPhdrSize   = 32
	elfShdrSize   = 40
	ptLoad        = 1
	pfW           = 2
	shtNobits     = 8
	emARM         = 40
	// maxELFHeaders bounds the header tables of an untrusted file.
	maxELFHeaders = 256
)

type elfSegment struct {
	off, vaddr, filesz uint64
	writable           bool
}

// parseELF32 reads a little-endian ARM ELF32 at the start of b and returns
// its loadable segments and the end of its last header table, section or
// segment.
func parseELF32(b []byte) ([]elfSegment, uint64, error) {
	if len(b) < elfHeaderSize || !bytes.Equal(b[:4], []byte("\x7fELF")) || b[4] != 1 || b[5] != 1 {
		return nil, 0, fmt.Errorf("%w: not a little-endian ELF32 file", ErrStage0)
	}
	le := binary.LittleEndian
	if m := le.Uint16(b[18:]); m != emARM {
		return nil, 0, fmt.Errorf("%w: machine %d, want ARM", ErrStage0, m)
	}
	phoff, shoff := uint64(le.Uint32(b[28:])), uint64(le.Uint32(b[32:]))
	phentsize, phnum := uint64(le.Uint16(b[42:])), uint64(le.Uint16(b[44:]))
	shentsize, shnum := uint64(le.Uint16(b[46:])), uint64(le.Uint16(b[48:]))
	if phnum == 0 || phnum > maxELFHeaders || shnum > maxELFHeaders || phentsize != elfPhdrSize || (shnum > 0 && shentsize != elfShdrSize) {
		return nil, 0, fmt.Errorf("%w: %d program headers of %d bytes, %d section headers of %d bytes", ErrStage0, phnum, phentsize, shnum, shentsize)
	}
	size := uint64(len(b))
	end := uint64(elfHeaderSize)
	within := func(off, n uint64) bool { return off <= size && n <= size-off }
	if !within(phoff, phnum*elfPhdrSize) || !within(shoff, shnum*elfShdrSize) {
		return nil, 0, fmt.Errorf("%w: header tables beyond the image", ErrStage0)
	}
	end = max(end, phoff+phnum*elfPhdrSize, shoff+shnum*elfShdrSize)
	var segs []elfSegment
	for i := range phnum {
		p := b[phoff+i*elfPhdrSize:]
		s := elfSegment{off: uint64(le.Uint32(p[4:])), vaddr: uint64(le.Uint32(p[8:])), filesz: uint64(le.Uint32(p[16:])),
			writable: le.Uint32(p[24:])&pfW != 0}
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
		sh := b[shoff+i*elfShdrSize:]
		if le.Uint32(sh[4:]) == shtNobits {
			continue
		}
		off, n := uint64(le.Uint32(sh[16:])), uint64(le.Uint32(sh[20:]))
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
	_, end, err := parseELF32(b)
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
	segs, end, err := parseELF32(file)
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
