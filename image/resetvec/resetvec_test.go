package resetvec

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// riscvELF links a small Go program for linux/riscv64 with its text where
// a bare-metal image's would be: a real linker's output, as the Makefile
// hands Add a real image.
func riscvELF(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello.elf")
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-T 0x80010000 -R 0x1000", src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=riscv64", "GO111MODULE=off", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAdd(t *testing.T) {
	in := riscvELF(t)
	const at = 0x80000000
	out, err := Add(in, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < len(in) {
		t.Fatalf("output shorter than input")
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := elf.NewFile(bytes.NewReader(in))
	var vec *elf.Prog
	loads := 0
	for _, p := range f.Progs {
		if p.Type == elf.PT_GNU_STACK {
			t.Errorf("PT_GNU_STACK still present")
		}
		if p.Type == elf.PT_LOAD && p.Paddr == at {
			vec = p
		} else if p.Type == elf.PT_LOAD {
			loads++
		}
	}
	origLoads := 0
	for _, p := range orig.Progs {
		if p.Type == elf.PT_LOAD {
			origLoads++
			// the program header table may lie inside a segment:
			// only it may differ
			got, want := bytes.Clone(out[p.Off:p.Off+p.Filesz]), bytes.Clone(in[p.Off:p.Off+p.Filesz])
			phoff, phend := uint64(64), uint64(64+len(orig.Progs)*56)
			if p.Off <= phoff && phend <= p.Off+p.Filesz {
				clear(got[phoff-p.Off : phend-p.Off])
				clear(want[phoff-p.Off : phend-p.Off])
			}
			if !bytes.Equal(got, want) {
				t.Errorf("segment at %#x changed", p.Paddr)
			}
		}
	}
	if vec == nil {
		t.Fatalf("no PT_LOAD at %#x", at)
	}
	if loads != origLoads {
		t.Errorf("%d other loadable segments, want %d", loads, origLoads)
	}
	if vec.Flags != elf.PF_R|elf.PF_X || vec.Filesz != Size || vec.Memsz != Size {
		t.Errorf("reset vector segment: flags %v size %d/%d", vec.Flags, vec.Filesz, vec.Memsz)
	}
	code := out[vec.Off : vec.Off+Size]
	to, err := Target(code, at)
	if err != nil {
		t.Fatal(err)
	}
	if to != f.Entry {
		t.Errorf("reset vector jumps to %#x, entry is %#x", to, f.Entry)
	}

	if _, err := Add(out, at); !errors.Is(err, ErrNoSpareHeader) {
		t.Errorf("second Add: %v, want ErrNoSpareHeader", err)
	}
	if _, err := Add(in, 0x80010000); !errors.Is(err, ErrPlacement) {
		t.Errorf("Add over the text: %v, want ErrPlacement", err)
	}
	if _, err := Add(in[:100], at); !errors.Is(err, ErrELF) {
		t.Errorf("Add of a truncated file: %v, want ErrELF", err)
	}
}

func TestSplit(t *testing.T) {
	for _, off := range []int64{0, 4, 0x7ff, 0x800, 0xfff, 0x1000, 0x68a0c, 0x7ffff7ff, -4, -0x800, -0x801} {
		code := make([]byte, 8)
		a, j := auipc(5, off), jalr(0, 5, off)
		code[0], code[1], code[2], code[3] = byte(a), byte(a>>8), byte(a>>16), byte(a>>24)
		code[4], code[5], code[6], code[7] = byte(j), byte(j>>8), byte(j>>16), byte(j>>24)
		got, err := Target(code, 0x80000000)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(0x80000000 + off); got != want {
			t.Errorf("offset %#x: jumps to %#x, want %#x", off, got, want)
		}
	}
}
