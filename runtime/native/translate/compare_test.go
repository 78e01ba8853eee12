package translate

import (
	"bytes"
	"go/ast"
	"go/token"
	"strings"
	"testing"
)

// Comparisons in wasm2go's shape: of int64s, uint64s (converted or
// declared), constants untyped and typed, and of other types, which stay.
const compareSrc = `package p

type Module struct{ g int64 }

func (m *Module) F(a, b int64, c, d uint64, e, f int32) int32 {
	if a < b || a <= b || a > b || a >= b || a == b || a != b {
		return 1
	}
	if uint64(a) < uint64(b) || c <= d || c > d || c >= d || c == d || c != 0 {
		return 2
	}
	if e < f || a == 0 || 0 < a || float64(e) < 2 {
		return 3
	}
	const k = 5
	if k < 7 || int64(k) < 9 {
		return 4
	}
	x := m.g >= a
	_ = x
	return 0
}

func gen[T int64 | uint64](x, y T) bool { return x < y }

func helper(a, b uint64) bool { return a>>32 != b }
`

func wordComparesOn(t *testing.T, src string) (string, error) {
	t.Helper()
	return passOn(t, src, func(fset *token.FileSet, f *ast.File) error {
		_, err := wordCompares(fset, f)
		return err
	})
}

// Every comparison of two int64s or two uint64s in a method, a constant
// one included, becomes its helper's call with the operands in their
// order; constant comparisons, other types, type parameters and the
// package-level helpers stay.
func TestWordCompares(t *testing.T) {
	out, err := wordComparesOn(t, compareSrc)
	if err != nil {
		t.Fatal(err)
	}
	typeCheck(t, out)
	for _, want := range []string{
		"teastickLtS(a, b)", "teastickLeS(a, b)", "teastickGtS(a, b)", "teastickGeS(a, b)", "teastickEq(a, b)", "teastickNe(a, b)",
		"teastickLtU(uint64(a), uint64(b))", "teastickLeU(c, d)", "teastickGtU(c, d)", "teastickGeU(c, d)", "teastickEq(c, d)", "teastickNe(c, 0)",
		"e < f", "teastickEq(a, 0)", "teastickLtS(0, a)", "float64(e) < 2",
		"k < 7", "int64(k) < 9", "x := teastickGeS(m.g, a)", "return x < y", "return a>>32 != b",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "func teastick"); n != 10 {
		t.Errorf("%d helpers, want 10:\n%s", n, out)
	}
	// Nothing to rewrite: nothing added.
	if out, err := wordComparesOn(t, "package p\n\nfunc f(a, b int32) bool { return a < b }\n"); err != nil || strings.Contains(out, "teastick") {
		t.Errorf("%v\n%s", err, out)
	}
}

// A module declaring a helper's name, or one that does not type-check,
// is refused.
func TestWordComparesRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"declares helper": compareSrc + "\nfunc teastickLtS() {}\n",
		"declares const":  compareSrc + "\nconst teastickHalves = 1\n",
		"does not check":  compareSrc + "\nfunc g() int64 { return undefined }\n",
	} {
		if _, err := wordComparesOn(t, src); err == nil {
			t.Errorf("%s: rewritten", name)
		}
	}
}

// Each helper answers as Go's operator on a grid of values around 0,
// 2^31, 2^32 and the ends of both ranges, every pair of them, on the host
// and as a 32-bit arm program under qemu-arm, where the words are
// compared.
func TestWordComparesRuns(t *testing.T) {
	out, err := wordComparesOn(t, compareSrc)
	if err != nil {
		t.Fatal(err)
	}
	helpers := out[strings.Index(out, "// teastickHalves"):]
	dir := t.TempDir()
	writeModule(t, dir, map[string]string{
		"go.mod":  "module x\n\ngo 1.24\n",
		"main.go": compareMain + helpers,
	})
	onHostAndArm(t, dir, func(t *testing.T, res []byte) {
		if !bytes.Contains(res, []byte(" same (")) {
			t.Fatalf("output %q", res)
		}
	})
}

const compareMain = `package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
)

func main() {
	var vals []uint64
	for _, edge := range []uint64{0, 1 << 31, 1 << 32, 1 << 63, 0xffffffff_00000000, 0x7fffffff_ffffffff} {
		for d := uint64(0); d <= 2; d++ {
			vals = append(vals, edge+d, edge-d)
		}
	}
	vals = append(vals, 0x00000001_00000000, 0x00000001_ffffffff, 0xfffffffe_00000000, 0x80000000_00000001, math.MaxUint64)
	n, trues := 0, 0
	check := func(what string, x, y uint64, got, want bool) {
		if got != want {
			fmt.Printf("%s(%#x, %#x) = %v, Go says %v\n", what, x, y, got, want)
			os.Exit(1)
		}
		n++
		if got {
			trues++
		}
	}
	for _, x := range vals {
		for _, y := range vals {
			a, b := int64(x), int64(y)
			check("Eq", x, y, teastickEq(a, b), a == b)
			check("Ne", x, y, teastickNe(a, b), a != b)
			check("EqU", x, y, teastickEq(x, y), x == y)
			check("NeU", x, y, teastickNe(x, y), x != y)
			check("LtS", x, y, teastickLtS(a, b), a < b)
			check("LeS", x, y, teastickLeS(a, b), a <= b)
			check("GtS", x, y, teastickGtS(a, b), a > b)
			check("GeS", x, y, teastickGeS(a, b), a >= b)
			check("LtU", x, y, teastickLtU(x, y), x < y)
			check("LeU", x, y, teastickLeU(x, y), x <= y)
			check("GtU", x, y, teastickGtU(x, y), x > y)
			check("GeU", x, y, teastickGeU(x, y), x >= y)
		}
	}
	fmt.Printf("%s/%s: %d same (%d true), halves %v\n", runtime.GOOS, runtime.GOARCH, n, trues, teastickHalves)
}

`
