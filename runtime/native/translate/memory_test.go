package translate

import (
	"bytes"
	"go/ast"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

// A module in wasm2go v0.4.21's shape: its load and store helpers, as it
// writes them, and byte accesses without and with an offset.
const memorySrc = `package p

import "encoding/binary"

type Module struct {
	memory []byte
}

func (m *Module) Load8(v0 int32) int32 { return int32(m.memory[uint32(v0)]) }

func (m *Module) Load8Off(v0 int32, off uint64) int32 {
	return int32(m.memory[uint64(uint32(v0))+off])
}

func (m *Module) Store8Off(v0 int32, off uint64, v int32) {
	m.memory[uint64(uint32(v0))+off] = byte(v)
}

func (m *Module) Load16(a uint64) uint16 { return load16(m.memory, a) }
func (m *Module) Load32(a uint64) uint32 { return load32(m.memory, a) }
func (m *Module) Load64(a uint64) uint64 { return load64(m.memory, a) }
func (m *Module) Load32At(a uint32) uint32 { return load32(m.memory, a) }
func (m *Module) Store16(a uint64, v uint16) { store16(m.memory, a, v) }
func (m *Module) Store32(a uint64, v uint32) { store32(m.memory, a, v) }
func (m *Module) Store64(a uint64, v uint64) { store64(m.memory, a, v) }
func (m *Module) Store64At(a uint32, v uint64) { store64(m.memory, a, v) }

func New(n int) *Module { return &Module{memory: make([]byte, n)} }

//go:nosplit
func load16[T uint32 | uint64](mem []byte, addr T) uint16 {
	a := uint64(addr)
	return binary.LittleEndian.Uint16(mem[:0:len(mem)][a : a+2 : a+2])
}

//go:nosplit
func store16[T uint32 | uint64](mem []byte, addr T, val uint16) {
	a := uint64(addr)
	binary.LittleEndian.PutUint16(mem[:0:len(mem)][a:a+2:a+2], val)
}

//go:nosplit
func load32[T uint32 | uint64](mem []byte, addr T) uint32 {
	a := uint64(addr)
	return binary.LittleEndian.Uint32(mem[:0:len(mem)][a : a+4 : a+4])
}

//go:nosplit
func store32[T uint32 | uint64](mem []byte, addr T, val uint32) {
	a := uint64(addr)
	binary.LittleEndian.PutUint32(mem[:0:len(mem)][a:a+4:a+4], val)
}

//go:nosplit
func load64[T uint32 | uint64](mem []byte, addr T) uint64 {
	a := uint64(addr)
	return binary.LittleEndian.Uint64(mem[:0:len(mem)][a : a+8 : a+8])
}

//go:nosplit
func store64[T uint32 | uint64](mem []byte, addr T, val uint64) {
	a := uint64(addr)
	binary.LittleEndian.PutUint64(mem[:0:len(mem)][a:a+8:a+8], val)
}
`

func wordAddressesOn(t *testing.T, src string) (string, error) {
	t.Helper()
	return passOn(t, src, func(fset *token.FileSet, f *ast.File) error { return wordAddresses(fset, f, "memory") })
}

// Every helper and every byte access with an offset computes its
// address in the host's word; a byte access at a uint32 stays as it is.
func TestWordAddresses(t *testing.T) {
	out, err := wordAddressesOn(t, memorySrc)
	if err != nil {
		t.Fatal(err)
	}
	typeCheck(t, out)
	if n := strings.Count(out, "a := teastickAddr(addr)"); n != 6 {
		t.Errorf("%d helpers rewritten, want 6:\n%s", n, out)
	}
	if n := strings.Count(out, "m.memory[teastickAddr(uint64(uint32(v0))+off)]"); n != 2 {
		t.Errorf("%d byte accesses with an offset rewritten, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "m.memory[uint32(v0)]") {
		t.Errorf("byte access at a uint32 changed:\n%s", out)
	}
	if strings.Count(out, "func teastickAddr") != 1 {
		t.Errorf("want one teastickAddr:\n%s", out)
	}
}

// A helper of another shape is refused, not rewritten half.
func TestWordAddressesRefusesOtherHelper(t *testing.T) {
	src := strings.Replace(memorySrc, "func load32[T uint32 | uint64](mem []byte, addr T) uint32 {\n\ta := uint64(addr)",
		"func load32[T uint32 | uint64](mem []byte, addr T) uint32 {\n\ta := uint64(addr) + 0", 1)
	if src == memorySrc {
		t.Fatal("fixture did not change")
	}
	if _, err := wordAddressesOn(t, src); err == nil || !strings.Contains(err.Error(), "load32") {
		t.Fatalf("err %v, want one naming load32", err)
	}
	src = memorySrc + "\nfunc teastickAddr() {}\n"
	if _, err := wordAddressesOn(t, src); err == nil {
		t.Fatal("a module defining teastickAddr was rewritten")
	}
}

// memoryPassesOn runs wordAddresses and wordAccesses, as rewrite does.
func memoryPassesOn(t *testing.T, src string) (string, error) {
	t.Helper()
	return passOn(t, src, func(fset *token.FileSet, f *ast.File) error {
		if err := wordAddresses(fset, f, "memory"); err != nil {
			return err
		}
		return wordAccesses(fset, f)
	})
}

// Each of the six helpers calls its word helper in place of
// encoding/binary's function, and the file imports what those use.
func TestWordAccesses(t *testing.T) {
	out, err := memoryPassesOn(t, memorySrc)
	if err != nil {
		t.Fatal(err)
	}
	typeCheck(t, out)
	for _, call := range []string{
		"return teastickLoad16(mem[:0:len(mem)][a : a+2 : a+2])",
		"return teastickLoad32(mem[:0:len(mem)][a : a+4 : a+4])",
		"return teastickLoad64(mem[:0:len(mem)][a : a+8 : a+8])",
		"teastickStore16(mem[:0:len(mem)][a:a+2:a+2], val)",
		"teastickStore32(mem[:0:len(mem)][a:a+4:a+4], val)",
		"teastickStore64(mem[:0:len(mem)][a:a+8:a+8], val)",
	} {
		if strings.Count(out, call) != 1 {
			t.Errorf("want one %q:\n%s", call, out)
		}
	}
	if n := strings.Count(out, "binary.LittleEndian."); n != 6 {
		t.Errorf("%d encoding/binary calls, want the word helpers' 6:\n%s", n, out)
	}
	for _, imp := range []string{`"runtime"`, `"unsafe"`} {
		if !strings.Contains(out, imp) {
			t.Errorf("no import %s:\n%s", imp, out)
		}
	}
	// wasm2go writes only the helpers a module uses.
	some := "package p\n\nimport \"encoding/binary\"\n\nfunc f(m []byte) uint32 { return load32(m, uint32(0)) }\n\n" +
		"func load32[T uint32 | uint64](mem []byte, addr T) uint32 {\n\ta := uint64(addr)\n\treturn binary.LittleEndian.Uint32(mem[:0:len(mem)][a : a+4 : a+4])\n}\n"
	if out, err := memoryPassesOn(t, some); err != nil || !strings.Contains(out, "return teastickLoad32(") {
		t.Errorf("module with load32 only: %v\n%s", err, out)
	} else {
		typeCheck(t, out)
	}
	// A module without the helpers is left alone.
	plain := "package p\n\nfunc f() {}\n"
	if out, err := memoryPassesOn(t, plain); err != nil || strings.Contains(out, "teastick") {
		t.Errorf("module without helpers: %v\n%s", err, out)
	}
}

// A helper of another shape, or a module already declaring a name the
// word helpers use, is refused.
func TestWordAccessesRefuses(t *testing.T) {
	accesses := func(src string) error {
		_, err := passOn(t, src, func(fset *token.FileSet, f *ast.File) error { return wordAccesses(fset, f) })
		return err
	}
	twice := strings.Replace(memorySrc, "return binary.LittleEndian.Uint32(mem[:0:len(mem)][a : a+4 : a+4])",
		"_ = binary.LittleEndian.Uint32(mem)\n\treturn binary.LittleEndian.Uint32(mem[:0:len(mem)][a : a+4 : a+4])", 1)
	none := strings.Replace(memorySrc, "binary.LittleEndian.PutUint64(mem[:0:len(mem)][a:a+8:a+8], val)",
		"binary.BigEndian.PutUint64(mem[:0:len(mem)][a:a+8:a+8], val)", 1)
	for name, src := range map[string]string{
		"calls twice":      twice,
		"other byte order": none,
		"declares helper":  memorySrc + "\nfunc teastickLoad32() {}\n",
		"declares runtime": memorySrc + "\nvar runtime int\n",
		"declares const":   memorySrc + "\nconst teastickWordAccess = 1\n",
	} {
		if src == memorySrc {
			t.Fatalf("%s: fixture did not change", name)
		}
		if err := accesses(src); err == nil {
			t.Errorf("%s: rewritten", name)
		}
	}
}

// The rewritten accesses read, write and trap exactly where wasm2go's
// do, at addresses around the memory's end, 2^31 and 2^32, with and
// without offsets and at every alignment, on the host and as a 32-bit
// arm program (qemu-arm), where teastickAddr's 32-bit branch runs and
// the word helpers access memory a word at a time. On arm every helper
// must also be small enough for Go to inline: wasm2go's load64 and
// store64 were not, a call on each 64-bit access.
func TestWordAddressesRuns(t *testing.T) {
	out, err := memoryPassesOn(t, memorySrc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module x\n\ngo 1.24\n",
		"a/m.go":  memorySrc,
		"b/m.go":  out,
		"main.go": memoryMain,
	}
	writeModule(t, dir, files)
	env := append(os.Environ(), moduleEnv...)
	onHostAndArm(t, dir, func(t *testing.T, res []byte) {
		// Both sides must have both read and trapped: a grid that only
		// trapped (or never did) would compare nothing.
		if !bytes.Contains(res, []byte(" same,")) || bytes.Contains(res, []byte(" 0 in bounds")) || bytes.Contains(res, []byte(" 0 traps")) {
			t.Fatalf("output %q: want accesses in bounds and traps", res)
		}
	})
	t.Run("arm inlines", func(t *testing.T) {
		build := exec.Command("go", "build", "-gcflags=-m", "./b")
		build.Dir = dir
		build.Env = append(env, "GOARCH=arm", "GOARM=7")
		res, err := build.CombinedOutput()
		if err != nil {
			t.Fatalf("build: %v\n%s", err, res)
		}
		for _, h := range []string{"load16", "load32", "load64", "store16", "store32", "store64"} {
			if !bytes.Contains(res, []byte("can inline "+h+"[go.shape.uint64]")) {
				t.Errorf("arm does not inline %s:\n%s", h, res)
			}
		}
	})
}

// onHostAndArm builds the program of the module in dir (writeModule)
// for the host and as a 32-bit arm program, runs each (the arm one under
// qemu-arm, as a Cortex-A7), and has check judge its output.
func onHostAndArm(t *testing.T, dir string, check func(t *testing.T, out []byte)) {
	t.Helper()
	env := append(os.Environ(), moduleEnv...)
	run := func(t *testing.T, goarch string, prefix ...string) {
		bin := filepath.Join(dir, "prog-"+goarch)
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = dir
		build.Env = append(env, "GOARCH="+goarch, "GOARM=7")
		if res, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, res)
		}
		cmd := exec.Command(bin)
		if len(prefix) > 0 {
			cmd = exec.Command(prefix[0], append(prefix[1:], bin)...)
		}
		res, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, res)
		}
		t.Logf("%s", bytes.TrimSpace(res))
		check(t, res)
	}
	t.Run("host", func(t *testing.T) { run(t, goruntime.GOARCH) })
	t.Run("arm", func(t *testing.T) {
		if _, err := exec.LookPath("qemu-arm"); err != nil {
			t.Fatalf("qemu-arm not found (Debian package qemu-user; `make deps` installs it): %v", err)
		}
		run(t, "arm", "qemu-arm", "-cpu", "cortex-a7")
	})
}

const memoryMain = `package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	a "x/a"
	b "x/b"
)

// try runs f and returns its result, or "trap" for Go's bounds panic
// (what the runtime reports as an out of bounds memory access).
func try(f func() uint64) (s string) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(runtime.Error)
			if !ok || !strings.Contains(e.Error(), "out of range") {
				panic(r)
			}
			s = "trap"
		}
	}()
	return fmt.Sprint(f())
}

func main() {
	const size = 1 << 16
	ma, mb := a.New(size), b.New(size)
	for i := range uint32(size) {
		ma.Store8Off(int32(i), 0, int32(i*7))
		mb.Store8Off(int32(i), 0, int32(i*7))
	}
	var bases []uint64
	for _, edge := range []uint64{0, size, 1 << 31, 1 << 32} {
		for d := uint64(0); d <= 9; d++ {
			bases = append(bases, edge+d, edge-d)
		}
	}
	offs := []uint64{0, 1, 7, size, 1 << 31, 1<<32 - 1}
	same, in, traps := 0, 0, 0
	check := func(what string, x uint64, fa, fb func() uint64) {
		ra, rb := try(fa), try(fb)
		if ra != rb {
			fmt.Printf("%s at %#x: wasm2go %s, rewritten %s\n", what, x, ra, rb)
			os.Exit(1)
		}
		same++
		if ra == "trap" {
			traps++
		} else {
			in++
		}
	}
	for _, base := range bases {
		if base >= 1<<32 {
			continue
		}
		v0 := int32(uint32(base))
		for _, off := range offs {
			x := base + off
			check("load8", x, func() uint64 { return uint64(ma.Load8Off(v0, off)) }, func() uint64 { return uint64(mb.Load8Off(v0, off)) })
			check("store8", x, func() uint64 { ma.Store8Off(v0, off, 5); return 0 }, func() uint64 { mb.Store8Off(v0, off, 5); return 0 })
			check("load16", x, func() uint64 { return uint64(ma.Load16(x)) }, func() uint64 { return uint64(mb.Load16(x)) })
			check("load32", x, func() uint64 { return uint64(ma.Load32(x)) }, func() uint64 { return uint64(mb.Load32(x)) })
			check("load64", x, func() uint64 { return ma.Load64(x) }, func() uint64 { return mb.Load64(x) })
			check("store16", x, func() uint64 { ma.Store16(x, 0x1234); return 0 }, func() uint64 { mb.Store16(x, 0x1234); return 0 })
			check("store32", x, func() uint64 { ma.Store32(x, 0x12345678); return 0 }, func() uint64 { mb.Store32(x, 0x12345678); return 0 })
			check("store64", x, func() uint64 { ma.Store64(x, 0x1122334455667788); return 0 }, func() uint64 { mb.Store64(x, 0x1122334455667788); return 0 })
		}
		a32 := uint32(base)
		check("load32 at", base, func() uint64 { return uint64(ma.Load32At(a32)) }, func() uint64 { return uint64(mb.Load32At(a32)) })
		check("store64 at", base, func() uint64 { ma.Store64At(a32, 9); return 0 }, func() uint64 { mb.Store64At(a32, 9); return 0 })
	}
	for i := range uint32(size) {
		if x, y := ma.Load8(int32(i)), mb.Load8(int32(i)); x != y {
			fmt.Printf("memory differs at %#x: %d, rewritten %d\n", i, x, y)
			os.Exit(1)
		}
	}
	fmt.Printf("%s/%s: %d same, %d in bounds, %d traps\n", runtime.GOOS, runtime.GOARCH, same, in, traps)
}
`

// New allocates the memory with the capacity given, and the pass refuses
// a New that does not assign it once with make.
func TestMemoryCapacity(t *testing.T) {
	capacity := func(_ *token.FileSet, f *ast.File) error { return memoryCapacity(f, "memory", 0x40000) }
	const head = "package p\n\ntype Module struct{ memory []byte }\n\n"
	out, err := passOn(t, head+"func New() *Module {\n\tm := new(Module)\n\tm.memory = make([]byte, 0x20000)\n\treturn m\n}\n", capacity)
	if err != nil || !strings.Contains(out, "m.memory = make([]byte, 0x20000, 0x40000)") {
		t.Errorf("%v\n%s", err, out)
	}
	for _, body := range []string{
		"m := new(Module)\n\treturn m",
		"m := new(Module)\n\tm.memory = make([]byte, 1)\n\tm.memory = make([]byte, 2)\n\treturn m",
		"m := new(Module)\n\tm.memory = nil\n\treturn m",
	} {
		if _, err := passOn(t, head+"func New() *Module {\n\t"+body+"\n}\n", capacity); err == nil {
			t.Errorf("accepted New {%s}", body)
		}
	}
}
