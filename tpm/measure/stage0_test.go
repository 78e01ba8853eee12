package measure

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/teastick/teastick/image/resetvec"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

var (
	armOnce sync.Once
	armELF  []byte
	armErr  error
)

// armProgram links a small Go program for linux/arm the way the Makefile
// links stage 0 (-s -w, -T, -R 0x1000): the same linker lays out the
// same kind of ELF file.
func armProgram(t testing.TB) []byte {
	t.Helper()
	armOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stage0elf")
		if err != nil {
			armErr = err
			return
		}
		defer os.RemoveAll(dir)
		src := "package main\n\nvar Version = \"dev\"\n\nfunc main() { println(\"stage0\", Version) }\n"
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module stage0elf\n\ngo 1.22\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
		out := filepath.Join(dir, "boot.elf")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -buildid= -T 0x60010000 -R 0x1000", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			armErr = errors.New(string(b))
			return
		}
		armELF, armErr = os.ReadFile(out)
	})
	if armErr != nil {
		t.Fatalf("building a linux/arm program: %v", armErr)
	}
	return armELF
}

// runningRegions returns what stage 0 compares at run time, taken from the
// file by section: the code and the read-only data as they sit in memory.
func runningRegions(t testing.TB, file []byte) []Region {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var rs []Region
	for _, name := range []string{".text", ".rodata", ".gopclntab"} {
		s := f.Section(name)
		if s == nil {
			t.Fatalf("no %s section", name)
		}
		b, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, Region{Addr: s.Addr, Bytes: b})
	}
	return rs
}

func TestStage0File(t *testing.T) {
	file := armProgram(t)
	window := append(bytes.Clone(file), bytes.Repeat([]byte{0xa5}, 4096)...)
	got, err := Stage0File(window)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(file) {
		t.Fatalf("Stage0File found %d bytes, the file has %d", len(got), len(file))
	}
	for _, bad := range [][]byte{nil, []byte("\x7fELF"), file[:100], bytes.Repeat([]byte{0}, 4096)} {
		if _, err := Stage0File(bad); !errors.Is(err, ErrStage0) {
			t.Errorf("Stage0File(%d bytes) = %v, want ErrStage0", len(bad), err)
		}
	}
}

func TestCheckStage0(t *testing.T) {
	file := armProgram(t)
	good := runningRegions(t, file)
	if err := CheckStage0(file, good); err != nil {
		t.Fatalf("the file's own regions: %v", err)
	}
	patched := runningRegions(t, file)
	patched[0].Bytes = bytes.Clone(patched[0].Bytes)
	patched[0].Bytes[len(patched[0].Bytes)/2] ^= 1
	f, _ := elf.NewFile(bytes.NewReader(file))
	data := f.Section(".noptrdata")
	for _, tc := range []struct {
		name    string
		file    []byte
		running []Region
	}{
		{"code differs", file, patched},
		{"region outside the image", file, []Region{{Addr: 0x10000, Bytes: []byte{1, 2, 3}}}},
		{"writable data is not compared", file, []Region{{Addr: data.Addr, Bytes: make([]byte, 4)}}},
		{"no regions", file, nil},
		{"trailing bytes", append(bytes.Clone(file), 0), good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckStage0(tc.file, tc.running); !errors.Is(err, ErrStage0) {
				t.Fatalf("CheckStage0 = %v, want ErrStage0", err)
			}
		})
	}
}

// TestMeasureStage0 extends stage 0's digest first, as stage 0 does, and
// checks the swtpm's PCR 0 and the log agree on it.
func TestMeasureStage0(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	m, err := New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(armProgram(t))
	if err := m.MeasureStage0(d, "teastick stage0 test"); err != nil {
		t.Fatal(err)
	}
	if err := m.MeasureImage([]byte("image"), "teastick test"); err != nil {
		t.Fatal(err)
	}
	if err := m.Separator(HandoffPCRs...); err != nil {
		t.Fatal(err)
	}
	h, err := m.Handoff()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Resume(tpm, h, nil)
	if err != nil {
		t.Fatalf("the stick resumes stage 0's log: %v", err)
	}
	ev := s.Events()
	if ev[0].PCR != PCRStage0 || ev[0].Type != eventlog.EV_S_CRTM_CONTENTS || ev[0].Digest != d {
		t.Fatalf("first event %+v, want PCR 0 EV_S_CRTM_CONTENTS %x", ev[0], d)
	}
	pcrs, err := ReadPCRs(tpm, []uint32{0})
	if err != nil {
		t.Fatal(err)
	}
	var zero [32]byte
	sep := sha256.Sum256(eventlog.Separator)
	p0 := sha256.Sum256(append(zero[:], d[:]...))
	p0 = sha256.Sum256(append(p0[:], sep[:]...))
	if pcrs[0] != p0 {
		t.Fatalf("PCR 0 = %x, want SHA-256(SHA-256(0 || stage 0) || separator) %x", pcrs[0], p0)
	}
}

func FuzzStage0File(f *testing.F) {
	f.Add(armProgram(f)[:4096])
	f.Add([]byte("\x7fELF\x01\x01"))
	// an ELF64 RISC-V header: 2 program headers at 64, no sections
	rv := make([]byte, 64+2*56)
	copy(rv, "\x7fELF\x02\x01\x01")
	rv[18], rv[32], rv[54], rv[56] = 243, 64, 56, 2
	f.Add(rv)
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Stage0File(b)
		if err != nil {
			return
		}
		if len(file) > len(b) {
			t.Fatalf("file of %d bytes from %d", len(file), len(b))
		}
		CheckStage0(file, []Region{{Addr: 0x60010000, Bytes: []byte{0}}})
	})
}

// TestStage0RISCV checks a riscv64 stage 0 as the Makefile makes it: an
// ELF64 RISC-V file with its reset vector appended (image/resetvec), found
// in a memory window and compared with its running code.
func TestStage0RISCV(t *testing.T) {
	dir := t.TempDir()
	src := "package main\n\nvar Version = \"dev\"\n\nfunc main() { println(\"stage0\", Version) }\n"
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module stage0elf\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	out := filepath.Join(dir, "boot.elf")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -buildid= -T 0xa0010000 -R 0x1000", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=riscv64", "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a linux/riscv64 program: %v\n%s", err, b)
	}
	linked, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	file, err := resetvec.Add(linked, 0x80000000)
	if err != nil {
		t.Fatal(err)
	}
	window := append(bytes.Clone(file), bytes.Repeat([]byte{0xa5}, 4096)...)
	got, err := Stage0File(window)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(file) {
		t.Fatalf("Stage0File found %d bytes, the file has %d", len(got), len(file))
	}
	good := runningRegions(t, file)
	if err := CheckStage0(file, good); err != nil {
		t.Fatalf("the file's own regions: %v", err)
	}
	patched := runningRegions(t, file)
	patched[0].Bytes = bytes.Clone(patched[0].Bytes)
	patched[0].Bytes[len(patched[0].Bytes)/2] ^= 1
	if err := CheckStage0(file, patched); !errors.Is(err, ErrStage0) {
		t.Fatalf("changed code: CheckStage0 = %v, want ErrStage0", err)
	}
	if _, err := Stage0File(file[:200]); !errors.Is(err, ErrStage0) {
		t.Fatalf("truncated: Stage0File = %v, want ErrStage0", err)
	}
}
