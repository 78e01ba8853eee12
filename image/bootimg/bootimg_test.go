package bootimg

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/teastick/teastick/image/resetvec"
)

var (
	armOnce sync.Once
	armELF  []byte
	armErr  error
)

// realARMExecutable builds a real 32-bit ARM executable with the host Go
// toolchain (GOOS=linux GOARCH=arm): the same ELF shape the TamaGo
// compiler produces, without needing it.
func realARMExecutable(t testing.TB) []byte {
	t.Helper()
	armOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bootimg")
		if err != nil {
			armErr = err
			return
		}
		defer os.RemoveAll(dir)
		src := filepath.Join(dir, "main.go")
		os.WriteFile(src, []byte("package main\nfunc main() { println(\"hi\") }\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644)
		out := filepath.Join(dir, "arm.elf")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			armErr = errors.New(string(b))
			return
		}
		armELF, armErr = os.ReadFile(out)
	})
	if armErr != nil {
		t.Fatal(armErr)
	}
	return armELF
}

func TestContainer(t *testing.T) {
	payload := []byte("\x7fELF and the rest")
	good := Wrap(payload)
	mutate := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"ok", good, 1 << 20, nil},
		{"ok with trailing memory", append(append([]byte(nil), good...), make([]byte, 100)...), 1 << 20, nil},
		{"empty", nil, 1 << 20, ErrTruncated},
		{"short header", good[:10], 1 << 20, ErrTruncated},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), 1 << 20, ErrMagic},
		{"unknown version", mutate(func(b []byte) []byte { b[8] = 2; return b }), 1 << 20, ErrVersion},
		{"reserved flags", mutate(func(b []byte) []byte { b[12] = 1; return b }), 1 << 20, ErrFlags},
		{"payload truncated", good[:len(good)-1], 1 << 20, ErrTruncated},
		{"over the limit", good, len(payload) - 1, ErrTooLarge},
		{"huge length", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1<<63); return b }), 1 << 20, ErrTooLarge},
		{"payload bit flipped", mutate(func(b []byte) []byte { b[HeaderSize+3] ^= 1; return b }), 1 << 20, ErrDigest},
		{"digest bit flipped", mutate(func(b []byte) []byte { b[30] ^= 1; return b }), 1 << 20, ErrDigest},
		{"truncated inside a zeroed window", mutate(func(b []byte) []byte {
			w := make([]byte, len(b)+64)
			copy(w, b[:len(b)-4])
			return w
		}), 1 << 20, ErrDigest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, digest, err := Open(tc.in, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, payload) {
				t.Fatalf("payload %q, want %q", got, payload)
			}
			if err == nil && digest != Digest(payload) {
				t.Fatal("returned digest is not the payload's")
			}
		})
	}
}

func TestPlanRealExecutable(t *testing.T) {
	img := realARMExecutable(t)
	p, err := NewPlan(img, 0, 1<<32)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Segments) == 0 || p.Entry == 0 {
		t.Fatalf("plan %+v", p)
	}
	lo, hi := p.Segments[0].Addr, uint64(0)
	for _, s := range p.Segments {
		lo = min(lo, s.Addr)
		hi = max(hi, s.Addr+uint64(len(s.File))+s.Zero)
	}
	// the window must contain every segment: one byte less on either side
	// is refused
	if _, err := NewPlan(img, lo, hi); err != nil {
		t.Fatalf("exact window refused: %v", err)
	}
	if _, err := NewPlan(img, lo+1, hi); !errors.Is(err, ErrELF) {
		t.Fatalf("window missing the first byte accepted: %v", err)
	}
	if _, err := NewPlan(img, lo, hi-1); !errors.Is(err, ErrELF) {
		t.Fatalf("window missing the last byte accepted: %v", err)
	}
}

func TestPlanRejects(t *testing.T) {
	img := realARMExecutable(t)
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), img...)
		f(b)
		return b
	}
	phoff := func(b []byte) int { return int(binary.LittleEndian.Uint32(b[28:])) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"not ELF", []byte("hello, world, this is not an ELF file at all")},
		{"empty", nil},
		{"truncated", img[:200]},
		{"64-bit class", mutate(func(b []byte) { b[4] = 2 })},
		{"big endian", mutate(func(b []byte) { b[5] = 2 })},
		{"wrong machine", mutate(func(b []byte) { binary.LittleEndian.PutUint16(b[18:], 62) })},
		{"shared object", mutate(func(b []byte) { binary.LittleEndian.PutUint16(b[16:], 3) })},
		{"entry outside code", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[24:], 4) })},
		{"segment file size beyond memory size", mutate(func(b []byte) {
			// first program header: p_filesz at +16, p_memsz at +20
			for i := 0; i < int(binary.LittleEndian.Uint16(b[44:])); i++ {
				ph := phoff(b) + i*32
				if binary.LittleEndian.Uint32(b[ph:]) == 1 {
					binary.LittleEndian.PutUint32(b[ph+20:], 1)
					binary.LittleEndian.PutUint32(b[ph+16:], 2)
					return
				}
			}
		})},
		{"segment file range beyond the image", mutate(func(b []byte) {
			for i := 0; i < int(binary.LittleEndian.Uint16(b[44:])); i++ {
				ph := phoff(b) + i*32
				if binary.LittleEndian.Uint32(b[ph:]) == 1 {
					binary.LittleEndian.PutUint32(b[ph+4:], 0xfffffff0)
					return
				}
			}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := NewPlan(tc.in, 0, 1<<32); !errors.Is(err, ErrELF) {
				t.Fatalf("NewPlan = %+v, %v; want ErrELF", p, err)
			}
		})
	}
}

func TestDigestIsOfPayload(t *testing.T) {
	img := realARMExecutable(t)
	payload, _, err := Open(Wrap(img), len(img))
	if err != nil {
		t.Fatal(err)
	}
	if Digest(payload) != Digest(img) {
		t.Fatal("digest of the contained payload differs from the ELF file's")
	}
	flipped := append([]byte(nil), img...)
	flipped[len(flipped)/2] ^= 1
	if Digest(flipped) == Digest(img) {
		t.Fatal("a one-bit change kept the digest")
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(Wrap([]byte("x")), 16)
	f.Add([]byte("TSTKIMG\x00"), 0)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 0 {
			max = -max
		}
		p, _, err := Open(b, max)
		if err == nil && (len(p) > max || len(p) > len(b)) {
			t.Fatalf("payload of %d bytes from %d bytes, max %d", len(p), len(b), max)
		}
	})
}

func FuzzNewPlan(f *testing.F) {
	f.Add([]byte("\x7fELF\x01\x01\x01"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []elf.Machine{elf.EM_ARM, elf.EM_RISCV} {
			p, err := NewPlanFor(m, b, 0x1000, 0x100000)
			if err != nil {
				continue
			}
			for _, s := range p.Segments {
				if s.Addr < 0x1000 || s.Addr+uint64(len(s.File))+s.Zero > 0x100000 {
					t.Fatalf("segment outside the window: %#x", s.Addr)
				}
			}
		}
	})
}

// TestPlanRISCV plans a real riscv64 executable with its reset vector
// (image/resetvec), as stage 0 plans the riscv64 stick, and refuses it as
// an ARM image and an ARM image as a RISC-V one.
func TestPlanRISCV(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() { println(\"hi\") }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644)
	out := filepath.Join(dir, "rv.elf")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-T 0x80010000 -R 0x1000", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=riscv64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	linked, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := resetvec.Add(linked, 0x80000000)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlanFor(elf.EM_RISCV, img, 0x80000000, 0xa0000000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range p.Segments {
		found = found || s.Addr == 0x80000000 && len(s.File) == resetvec.Size
	}
	if !found {
		t.Errorf("plan has no reset vector segment: %+v", p.Segments)
	}
	if _, err := NewPlanFor(elf.EM_RISCV, img, 0x80001000, 0xa0000000); !errors.Is(err, ErrELF) {
		t.Errorf("window without the reset vector accepted: %v", err)
	}
	if _, err := NewPlan(img, 0, 1<<40); !errors.Is(err, ErrELF) {
		t.Errorf("riscv64 image planned as ARM: %v", err)
	}
	if _, err := NewPlanFor(elf.EM_RISCV, realARMExecutable(t), 0, 1<<40); !errors.Is(err, ErrELF) {
		t.Errorf("ARM image planned as riscv64: %v", err)
	}
	if _, err := NewPlanFor(elf.EM_X86_64, img, 0, 1<<40); !errors.Is(err, ErrELF) {
		t.Errorf("unsupported machine accepted: %v", err)
	}
}
