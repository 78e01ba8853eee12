package imx

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/teastick/teastick/image/bootimg"
)

// seg is one loadable segment of a test ELF.
type seg struct {
	addr  uint32
	data  []byte
	bss   uint32
	flags elf.ProgFlag
}

// makeELF writes a 32-bit little-endian executable for machine with the
// given segments (program headers only, data after them).
func makeELF(machine elf.Machine, entry uint32, segs ...seg) []byte {
	const ehsize, phsize = 52, 32
	off := uint32(ehsize + phsize*len(segs))
	h := make([]byte, off)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 1, 1, 1 // ELFCLASS32, little endian, version
	le := binary.LittleEndian
	le.PutUint16(h[16:], uint16(elf.ET_EXEC))
	le.PutUint16(h[18:], uint16(machine))
	le.PutUint32(h[20:], 1)
	le.PutUint32(h[24:], entry)
	le.PutUint32(h[28:], ehsize)
	le.PutUint16(h[40:], ehsize)
	le.PutUint16(h[42:], phsize)
	le.PutUint16(h[44:], uint16(len(segs)))
	le.PutUint16(h[46:], 40)
	var body []byte
	for i, s := range segs {
		p := h[ehsize+phsize*i:]
		le.PutUint32(p[0:], uint32(elf.PT_LOAD))
		le.PutUint32(p[4:], off+uint32(len(body)))
		le.PutUint32(p[8:], s.addr)
		le.PutUint32(p[12:], s.addr)
		le.PutUint32(p[16:], uint32(len(s.data)))
		le.PutUint32(p[20:], uint32(len(s.data))+s.bss)
		le.PutUint32(p[24:], uint32(s.flags))
		le.PutUint32(p[28:], 0x1000)
		body = append(body, s.data...)
	}
	return append(h, body...)
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

var (
	goodStage0 = makeELF(elf.EM_ARM, 0x98110010,
		seg{addr: 0x98110000, data: fill(0x3000, 0xc0), flags: elf.PF_R | elf.PF_X},
		seg{addr: 0x98114000, data: fill(0x800, 0xda), bss: 0x2000, flags: elf.PF_R | elf.PF_W})
	goodStick = makeELF(elf.EM_ARM, 0x80010000,
		seg{addr: 0x80010000, data: fill(0x2000, 0x57), bss: 0x1000, flags: elf.PF_R | elf.PF_X})
)

// TestBuild lays out a stage 0 and a stick and checks every byte lands
// where stage 0 looks for it, and that Split finds both images again.
func TestBuild(t *testing.T) {
	container := bootimg.Wrap(goodStick)
	p, err := Build(Mk2, goodStage0, container)
	if err != nil {
		t.Fatal(err)
	}
	if p.Load != 0x98110000 || p.Entry != 0x98110010 {
		t.Errorf("load %#x entry %#x, want 0x98110000 and 0x98110010", p.Load, p.Entry)
	}
	if want := uint64(0x6800); p.Stage0Mem != want {
		t.Errorf("stage 0 reaches %#x bytes, want %#x", p.Stage0Mem, want)
	}
	at := func(addr uint64, n int) []byte { return p.Bytes[addr-p.Load : addr-p.Load+uint64(n)] }
	if !bytes.Equal(at(0x98110000, 0x3000), fill(0x3000, 0xc0)) || !bytes.Equal(at(0x98114000, 0x800), fill(0x800, 0xda)) {
		t.Error("stage 0's segments are not at their addresses")
	}
	if !bytes.Equal(at(0x98114800, 0x2000), make([]byte, 0x2000)) {
		t.Error("stage 0's .bss is not zero in the payload")
	}
	if !bytes.Equal(at(Mk2Stage0Image, len(goodStage0)), goodStage0) {
		t.Error("stage 0's ELF file is not at its window")
	}
	if !bytes.Equal(at(Mk2StickImage, len(container)), container) {
		t.Error("the container is not at its window")
	}
	if end := Mk2StickImage + uint64(len(container)) - p.Load; uint64(len(p.Bytes)) != end {
		t.Errorf("payload of %d bytes, want it to end with the container (%d)", len(p.Bytes), end)
	}
	s0, c, err := Mk2.Split(p.Bytes, p.Load)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s0, goodStage0) || !bytes.Equal(c, container) {
		t.Errorf("Split found %d and %d bytes, want stage 0 (%d) and the container (%d)", len(s0), len(c), len(goodStage0), len(container))
	}
}

// TestBuildRejects checks what stage 0 could not boot is refused when the
// image is made.
func TestBuildRejects(t *testing.T) {
	small := Mk2
	small.Stage0ImageMax = 0x100
	tiny := Mk2
	tiny.StickImageMax = 0x100
	corrupt := bootimg.Wrap(goodStick)
	corrupt[len(corrupt)-1] ^= 1
	tests := []struct {
		name      string
		layout    Layout
		stage0    []byte
		container []byte
		want      error
	}{
		{"stage 0 not an ELF", Mk2, []byte("not an elf"), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 for another machine", Mk2, makeELF(elf.EM_RISCV, 0x98110000, seg{addr: 0x98110000, data: fill(16, 1), flags: elf.PF_X}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 reaching into its ELF window", Mk2, makeELF(elf.EM_ARM, 0x98110000,
			seg{addr: 0x98110000, data: fill(16, 1), flags: elf.PF_X},
			seg{addr: Mk2Stage0Image - 0x1000, data: fill(16, 2), bss: 0x2000, flags: elf.PF_W}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 below its RAM", Mk2, makeELF(elf.EM_ARM, 0x98000000, seg{addr: 0x98000000, data: fill(16, 1), flags: elf.PF_X}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 segments overlapping", Mk2, makeELF(elf.EM_ARM, 0x98110000,
			seg{addr: 0x98110000, data: fill(0x100, 1), flags: elf.PF_X},
			seg{addr: 0x98110080, data: fill(0x100, 2), flags: elf.PF_W}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 entry outside its code", Mk2, makeELF(elf.EM_ARM, 0x98200000, seg{addr: 0x98110000, data: fill(16, 1), flags: elf.PF_X}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 larger than its window", small, goodStage0, bootimg.Wrap(goodStick), ErrStage0},
		{"container damaged", Mk2, goodStage0, corrupt, ErrStick},
		{"container truncated", Mk2, goodStage0, bootimg.Wrap(goodStick)[:100], ErrStick},
		{"container larger than its window", tiny, goodStage0, bootimg.Wrap(goodStick), ErrStick},
		{"stick linked into stage 0's RAM", Mk2, goodStage0, bootimg.Wrap(makeELF(elf.EM_ARM, 0x98110000,
			seg{addr: 0x98110000, data: fill(16, 1), flags: elf.PF_X})), ErrStick},
		{"stick not an ELF", Mk2, goodStage0, bootimg.Wrap([]byte("stick")), ErrStick},
		{"windows overlapping", func() Layout { l := Mk2; l.StickImageBase = l.Stage0ImageBase + 0x1000; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
		{"ELF window inside stage 0's RAM", func() Layout { l := Mk2; l.Stage0ImageBase = l.Stage0RAMEnd - 0x1000; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
		{"stick RAM over the payload", func() Layout { l := Mk2; l.StickRAMEnd = l.Stage0RAMStart + 0x1000; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Build(tc.layout, tc.stage0, tc.container)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Build: %v (payload %v), want %v", err, p != nil, tc.want)
			}
		})
	}
}

// fakeIMX is a .imx file as mkimage lays it out for a payload loaded at
// load: the IVT at offset 0 (loaded at load-0xc00), boot data after it,
// the payload at 0xc00.
func fakeIMX(load uint32, payload []byte) []byte {
	img := make([]byte, 0xc00+len(payload))
	self := load - 0xc00
	le := binary.LittleEndian
	le.PutUint32(img[0:], 0x402000d1)
	le.PutUint32(img[ivtEntry:], load)
	le.PutUint32(img[16:], self+0x20) // boot data
	le.PutUint32(img[ivtSelf:], self)
	le.PutUint32(img[0x20:], self-0x400)
	le.PutUint32(img[0x24:], uint32(len(img))+0x400)
	copy(img[0xc00:], payload)
	return img
}

func TestPatchEntry(t *testing.T) {
	p, err := Build(Mk2, goodStage0, bootimg.Wrap(goodStick))
	if err != nil {
		t.Fatal(err)
	}
	img := fakeIMX(uint32(p.Load), p.Bytes)
	if err := PatchEntry(img, p); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(img)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(h.Entry) != p.Entry {
		t.Errorf("entry %#x, want %#x", h.Entry, p.Entry)
	}
	// a payload not where the IVT loads it
	shifted := fakeIMX(uint32(p.Load)+0x1000, p.Bytes)
	if err := PatchEntry(shifted, p); !errors.Is(err, ErrIVT) {
		t.Errorf("payload off its load address: %v, want ErrIVT", err)
	}
	other := fakeIMX(uint32(p.Load), append([]byte{1}, p.Bytes[1:]...))
	if err := PatchEntry(other, p); !errors.Is(err, ErrIVT) {
		t.Errorf("another payload: %v, want ErrIVT", err)
	}
	if err := PatchEntry([]byte("no ivt here, only text of some length"), p); !errors.Is(err, ErrIVT) {
		t.Errorf("no IVT: %v, want ErrIVT", err)
	}
}

// FuzzReadHeader feeds arbitrary files to the .imx header reader.
func FuzzReadHeader(f *testing.F) {
	f.Add(fakeIMX(0x98110000, []byte("payload")))
	f.Add([]byte{0xd1, 0, 0x20, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHeader(b)
		if err != nil {
			return
		}
		if _, err := PayloadAt(b, uint64(h.Self)+1); err != nil && !errors.Is(err, ErrIVT) {
			t.Fatalf("PayloadAt: %v", err)
		}
	})
}
