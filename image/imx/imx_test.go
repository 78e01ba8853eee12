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
	goodStage0 = makeELF(elf.EM_ARM, 0x9d010010,
		seg{addr: 0x9d010000, data: fill(0x3000, 0xc0), flags: elf.PF_R | elf.PF_X},
		seg{addr: 0x9d014000, data: fill(0x800, 0xda), bss: 0x2000, flags: elf.PF_R | elf.PF_W})
	goodStick = makeELF(elf.EM_ARM, 0x80010000,
		seg{addr: 0x80010000, data: fill(0x2000, 0x57), bss: 0x1000, flags: elf.PF_R | elf.PF_X})
)

// TestBuild lays out a stage 0 and a stick and checks every byte lands
// where stage 0 looks for it: its segments at their addresses, the images
// packed below its RAM, the directory naming them; and that Split finds
// both images again through the directory.
func TestBuild(t *testing.T) {
	container := bootimg.Wrap(goodStick)
	p, err := Build(Mk2, goodStage0, container)
	if err != nil {
		t.Fatal(err)
	}
	if p.Entry != 0x9d010010 {
		t.Errorf("entry %#x, want 0x9d010010", p.Entry)
	}
	if p.Load%0x1000 != 0 || p.Load > p.Dir.Stage0Base || p.Dir.Stage0Base-p.Load >= 0x1000 {
		t.Errorf("load %#x: not the 4 KiB boundary below the ELF copy at %#x", p.Load, p.Dir.Stage0Base)
	}
	if end := p.Load + uint64(len(p.Bytes)); end != 0x9d014800 {
		t.Errorf("payload ends at %#x, want the end of stage 0's file bytes 0x9d014800 (no .bss)", end)
	}
	if p.Stage0End != 0x9d016800 {
		t.Errorf("stage 0 ends at %#x in memory, want 0x9d016800", p.Stage0End)
	}
	at := func(addr uint64, n int) []byte { return p.Bytes[addr-p.Load : addr-p.Load+uint64(n)] }
	if !bytes.Equal(at(0x9d010000, 0x3000), fill(0x3000, 0xc0)) || !bytes.Equal(at(0x9d014000, 0x800), fill(0x800, 0xda)) {
		t.Error("stage 0's segments are not at their addresses")
	}
	d, err := Mk2.Directory(at(Mk2.DirAddr(), DirSize))
	if err != nil {
		t.Fatal(err)
	}
	if d != p.Dir {
		t.Errorf("directory %+v, want %+v", d, p.Dir)
	}
	if !bytes.Equal(at(d.Stage0Base, len(goodStage0)), goodStage0) || d.Stage0Len != uint64(len(goodStage0)) {
		t.Error("stage 0's ELF file is not where the directory says")
	}
	if !bytes.Equal(at(d.ContainerBase, len(container)), container) || d.ContainerLen != uint64(len(container)) {
		t.Error("the container is not where the directory says")
	}
	if gap := Mk2.DirAddr() - (d.ContainerBase + d.ContainerLen); gap >= imageAlign {
		t.Errorf("%d bytes between the container and the directory: the images are not packed", gap)
	}
	if !bytes.Equal(at(Mk2.DirAddr()+DirSize, 0x10000), make([]byte, 0x10000)) {
		t.Error("stage 0's vectors are not zero")
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
	small.ImagesStart = small.ImagesEnd - 0x3000
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
		{"stage 0 for another machine", Mk2, makeELF(elf.EM_RISCV, 0x9d010000, seg{addr: 0x9d010000, data: fill(16, 1), flags: elf.PF_X}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 .bss beyond its RAM", Mk2, makeELF(elf.EM_ARM, 0x9d010000,
			seg{addr: 0x9d010000, data: fill(16, 1), flags: elf.PF_X},
			seg{addr: 0x9fff0000, data: fill(16, 2), bss: 0x20000, flags: elf.PF_W}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 in the images region", Mk2, makeELF(elf.EM_ARM, 0x9c000000, seg{addr: 0x9c000000, data: fill(16, 1), flags: elf.PF_X}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 segments overlapping", Mk2, makeELF(elf.EM_ARM, 0x9d010000,
			seg{addr: 0x9d010000, data: fill(0x100, 1), flags: elf.PF_X},
			seg{addr: 0x9d010080, data: fill(0x100, 2), flags: elf.PF_W}), bootimg.Wrap(goodStick), ErrStage0},
		{"stage 0 entry outside its code", Mk2, makeELF(elf.EM_ARM, 0x9d200000, seg{addr: 0x9d010000, data: fill(16, 1), flags: elf.PF_X}), bootimg.Wrap(goodStick), ErrStage0},
		{"container damaged", Mk2, goodStage0, corrupt, ErrStick},
		{"container truncated", Mk2, goodStage0, bootimg.Wrap(goodStick)[:100], ErrStick},
		{"images larger than their region", small, goodStage0, bootimg.Wrap(goodStick), ErrStick},
		{"stick linked into stage 0's RAM", Mk2, goodStage0, bootimg.Wrap(makeELF(elf.EM_ARM, 0x9d010000,
			seg{addr: 0x9d010000, data: fill(16, 1), flags: elf.PF_X})), ErrStick},
		{"stick not an ELF", Mk2, goodStage0, bootimg.Wrap([]byte("stick")), ErrStick},
		{"images region inside stage 0's RAM", func() Layout { l := Mk2; l.ImagesEnd = l.Stage0RAMStart + 0x1000; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
		{"stick RAM over stage 0's", func() Layout { l := Mk2; l.StickRAMEnd = l.Stage0RAMStart + 0x1000; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
		{"images below the stick's RAM", func() Layout { l := Mk2; l.ImagesStart = l.StickLoadStart - 0x1000; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
		{"no room for the directory", func() Layout { l := Mk2; l.ImagesStart = l.ImagesEnd - 8; return l }(), goodStage0, bootimg.Wrap(goodStick), ErrLayout},
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

// TestBuildNativeImage lays out a stick the size of one with the four
// example actors translated in (the arm image: 84.0 MB of file, 32.5 MiB
// of .bss, as the Go linker lays it out from 0x8000f000) beside a stage 0
// the size of today's (3.6 MB): the payload's images lie in the top of the
// stick's RAM, above where stage 0 will load the stick. A stick whose
// .bss would reach into the payload is refused: stage 0 would copy it
// over its own source.
func TestBuildNativeImage(t *testing.T) {
	const file, bss, stage0Size = 84_000_000, 0x2076618, 3_600_000
	stage0 := makeELF(elf.EM_ARM, 0x9d010010,
		seg{addr: 0x9d010000, data: make([]byte, stage0Size), flags: elf.PF_R | elf.PF_X},
		seg{addr: 0x9d010000 + 0x380000, data: fill(0x800, 0xda), bss: 0x2045f58, flags: elf.PF_R | elf.PF_W})
	stickELF := func(bss uint32) []byte {
		return makeELF(elf.EM_ARM, 0x80010000,
			seg{addr: 0x80010000, data: make([]byte, file), flags: elf.PF_R | elf.PF_X},
			seg{addr: 0x80010000 + (file+0xfff)&^0xfff, data: fill(0x1000, 0xda), bss: bss, flags: elf.PF_R | elf.PF_W})
	}
	p, err := Build(Mk2, stage0, bootimg.Wrap(stickELF(bss)))
	if err != nil {
		t.Fatal(err)
	}
	if p.StickEnd > p.Load || p.Dir.ContainerBase+p.Dir.ContainerLen > Mk2.DirAddr() || p.Load < Mk2.StickLoadStart {
		t.Errorf("stick to %#x, payload from %#x, container [%#x, +%d)", p.StickEnd, p.Load, p.Dir.ContainerBase, p.Dir.ContainerLen)
	}
	t.Logf("stick in memory to %#x, payload [%#x, %#x), %d bytes free between them", p.StickEnd, p.Load, p.Load+uint64(len(p.Bytes)), p.Load-p.StickEnd)
	// the gap between them, and one page more of .bss
	over := uint32(p.Load-p.StickEnd) + bss + 0x1000
	if _, err := Build(Mk2, stage0, bootimg.Wrap(stickELF(over))); !errors.Is(err, ErrStick) {
		t.Fatalf("a stick reaching into the payload: %v, want ErrStick", err)
	}
}

// TestDirectory checks the directory stage 0 reads is refused when it
// could send stage 0 outside the images region.
func TestDirectory(t *testing.T) {
	end := Mk2.DirAddr()
	good := Dir{Stage0Base: end - 0x3000, Stage0Len: 0x1000, ContainerBase: end - 0x1000, ContainerLen: 0x1000}
	if d, err := Mk2.Directory(good.Marshal()); err != nil || d != good {
		t.Fatalf("Directory(good) = %+v, %v", d, err)
	}
	reserved := good.Marshal()
	reserved[63] = 1
	badMagic := good.Marshal()
	badMagic[0] = 'X'
	tests := map[string][]byte{
		"no magic":                     badMagic,
		"short":                        good.Marshal()[:40],
		"reserved bytes":               reserved,
		"container over the directory": Dir{Stage0Base: end - 0x3000, Stage0Len: 0x1000, ContainerBase: end - 0x1000, ContainerLen: 0x1001}.Marshal(),
		"ELF copy below the region":    Dir{Stage0Base: Mk2.ImagesStart - 1, Stage0Len: 0x10, ContainerBase: end - 0x1000, ContainerLen: 0x1000}.Marshal(),
		"ELF copy into the container":  Dir{Stage0Base: end - 0x3000, Stage0Len: 0x2001, ContainerBase: end - 0x1000, ContainerLen: 0x1000}.Marshal(),
		"length wrapping around":       Dir{Stage0Base: end - 0x3000, Stage0Len: 0x1000, ContainerBase: end - 0x1000, ContainerLen: ^uint64(0)}.Marshal(),
		"empty container":              Dir{Stage0Base: end - 0x3000, Stage0Len: 0x1000, ContainerBase: end - 0x1000}.Marshal(),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if d, err := Mk2.Directory(b); !errors.Is(err, ErrDirectory) {
				t.Errorf("Directory = %+v, %v; want ErrDirectory", d, err)
			}
		})
	}
}

// FuzzDirectory feeds arbitrary bytes to the directory reader: whatever
// it accepts lies inside the images region, below the directory.
func FuzzDirectory(f *testing.F) {
	end := Mk2.DirAddr()
	f.Add(Dir{Stage0Base: end - 0x3000, Stage0Len: 0x1000, ContainerBase: end - 0x1000, ContainerLen: 0x1000}.Marshal())
	f.Add(make([]byte, DirSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Mk2.Directory(b)
		if err != nil {
			return
		}
		if d.Stage0Base < Mk2.ImagesStart || d.Stage0Base+d.Stage0Len > d.ContainerBase || d.ContainerBase+d.ContainerLen > end ||
			d.ContainerBase+d.ContainerLen < d.ContainerBase {
			t.Fatalf("accepted %+v", d)
		}
	})
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
	f.Add(fakeIMX(0x9c000000, []byte("payload")))
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
