// Package bootimg is the stick image container that stage 0 loads, measures
// and starts, and the load plan it derives from the ELF inside.
//
// Container layout (all integers little endian):
//
//	offset  size  field
//	0       8     magic "TSTKIMG\x00"
//	8       4     format version (1)
//	12      4     flags (0; reserved, must be zero)
//	16      8     payload length in bytes
//	24      32    SHA-256 of the payload
//	56      n     payload: the stick's ELF image, exactly as `make` built it
//
// The digest in the header guards against damaged or truncated media (boot
// media and QEMU's loader give stage 0 a memory window, not a file length):
// it is integrity, not authenticity. Stage 0 measures the SHA-256 of the
// payload into the TPM, so the reference measurement of a release is the
// digest of the stick ELF file and anyone can recompute it from the image.
package bootimg

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic starts every container.
var Magic = [8]byte{'T', 'S', 'T', 'K', 'I', 'M', 'G', 0}

// Version is the container format version.
const Version = 1

// HeaderSize is the size of the container header.
const HeaderSize = 56

// Errors returned for malformed containers and images.
var (
	ErrMagic     = errors.New("bootimg: not a stick image (bad magic)")
	ErrVersion   = errors.New("bootimg: unsupported container version")
	ErrFlags     = errors.New("bootimg: reserved flags set")
	ErrTruncated = errors.New("bootimg: image truncated")
	ErrTooLarge  = errors.New("bootimg: image larger than allowed")
	ErrDigest    = errors.New("bootimg: image damaged (digest mismatch)")
	ErrELF       = errors.New("bootimg: unusable ELF image")
)

// Wrap frames an ELF image in a container.
func Wrap(payload []byte) []byte {
	b := make([]byte, HeaderSize+len(payload))
	copy(b, Magic[:])
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint64(b[16:], uint64(len(payload)))
	sum := sha256.Sum256(payload)
	copy(b[24:], sum[:])
	copy(b[HeaderSize:], payload)
	return b
}

// Open validates the container at the start of b (b may extend beyond it,
// for example a whole memory window) and returns its payload, at most max
// bytes, and the payload's SHA-256 (checked against the header).
func Open(b []byte, max int) (payload []byte, digest [32]byte, err error) {
	if len(b) < HeaderSize {
		return nil, digest, ErrTruncated
	}
	if !bytes.Equal(b[:8], Magic[:]) {
		return nil, digest, ErrMagic
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return nil, digest, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	if f := binary.LittleEndian.Uint32(b[12:]); f != 0 {
		return nil, digest, fmt.Errorf("%w: %#x", ErrFlags, f)
	}
	n := binary.LittleEndian.Uint64(b[16:])
	if n > uint64(max) {
		return nil, digest, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
	}
	if n > uint64(len(b)-HeaderSize) {
		return nil, digest, fmt.Errorf("%w: header says %d bytes, %d present", ErrTruncated, n, len(b)-HeaderSize)
	}
	payload = b[HeaderSize : HeaderSize+int(n)]
	digest = sha256.Sum256(payload)
	if !bytes.Equal(digest[:], b[24:56]) {
		return nil, [32]byte{}, fmt.Errorf("%w: header %x, payload %x", ErrDigest, b[24:56], digest)
	}
	return payload, digest, nil
}

// Digest is the measurement of an image: SHA-256 of the ELF bytes.
func Digest(payload []byte) [32]byte { return sha256.Sum256(payload) }

// Segment is one loadable part of the image: copy File to physical address
// Addr and zero the following Zero bytes.
type Segment struct {
	Addr uint64
	File []byte
	Zero uint64
}

// Plan is how to load an image.
type Plan struct {
	Entry    uint64
	Segments []Segment
}

// MaxSegments bounds the number of loadable segments.
const MaxSegments = 16

// NewPlan checks that payload is a 32-bit little-endian ARM executable whose
// loadable segments all fall inside [lo, hi) and whose entry point lies in an
// executable segment, and returns the plan to load it.
func NewPlan(payload []byte, lo, hi uint64) (p *Plan, err error) {
	return NewPlanFor(elf.EM_ARM, payload, lo, hi)
}

// classes are the ELF classes of the machines stage 0 loads images for.
var classes = map[elf.Machine]elf.Class{
	elf.EM_ARM:   elf.ELFCLASS32,
	elf.EM_RISCV: elf.ELFCLASS64,
}

// NewPlanFor is NewPlan for an executable of machine: EM_ARM (ELF32) or
// EM_RISCV (ELF64).
func NewPlanFor(machine elf.Machine, payload []byte, lo, hi uint64) (p *Plan, err error) {
	class, ok := classes[machine]
	if !ok {
		return nil, fmt.Errorf("%w: no images for machine %v", ErrELF, machine)
	}
	// debug/elf is defensive, but the image is untrusted input: never let
	// a parser bug take stage 0 down.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: %v", ErrELF, r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrELF, err)
	}
	switch {
	case f.Class != class:
		return nil, fmt.Errorf("%w: class %v, want %v", ErrELF, f.Class, class)
	case f.Data != elf.ELFDATA2LSB:
		return nil, fmt.Errorf("%w: data %v, want little endian", ErrELF, f.Data)
	case f.Machine != machine:
		return nil, fmt.Errorf("%w: machine %v, want %v", ErrELF, f.Machine, machine)
	case f.Type != elf.ET_EXEC:
		return nil, fmt.Errorf("%w: type %v, want ET_EXEC", ErrELF, f.Type)
	}
	p = &Plan{Entry: f.Entry}
	entryOK := false
	for i, prog := range f.Progs {
		if prog.Type != elf.PT_LOAD || prog.Memsz == 0 {
			continue
		}
		if len(p.Segments) == MaxSegments {
			return nil, fmt.Errorf("%w: more than %d loadable segments", ErrELF, MaxSegments)
		}
		start, size := prog.Paddr, prog.Memsz
		if prog.Filesz > size {
			return nil, fmt.Errorf("%w: segment %d file size %d exceeds memory size %d", ErrELF, i, prog.Filesz, size)
		}
		if start < lo || size > hi-lo || start-lo > hi-lo-size {
			return nil, fmt.Errorf("%w: segment %d [%#x, %#x) outside the allowed [%#x, %#x)", ErrELF, i, start, start+size, lo, hi)
		}
		if prog.Off > uint64(len(payload)) || prog.Filesz > uint64(len(payload))-prog.Off {
			return nil, fmt.Errorf("%w: segment %d file range beyond the image", ErrELF, i)
		}
		for j, s := range p.Segments {
			if start < s.Addr+uint64(len(s.File))+s.Zero && s.Addr < start+size {
				return nil, fmt.Errorf("%w: segment %d overlaps segment %d", ErrELF, i, j)
			}
		}
		if prog.Flags&elf.PF_X != 0 && f.Entry >= start && f.Entry < start+size {
			entryOK = true
		}
		p.Segments = append(p.Segments, Segment{
			Addr: start,
			File: payload[prog.Off : prog.Off+prog.Filesz],
			Zero: size - prog.Filesz,
		})
	}
	if len(p.Segments) == 0 {
		return nil, fmt.Errorf("%w: no loadable segment", ErrELF)
	}
	if !entryOK {
		return nil, fmt.Errorf("%w: entry %#x not in an executable segment", ErrELF, f.Entry)
	}
	return p, nil
}
