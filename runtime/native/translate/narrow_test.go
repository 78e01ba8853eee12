package translate

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// loop is a state machine as Go's WebAssembly backend writes a loop over
// int64 values and wasm2go translates it: state 1 tests i < n, state 2
// computes from i (a product compared unsigned, a sum only truncated),
// state 3 returns. Its values cross 2^31 or start outside 32 bits for
// some starts, so the 32-bit copies leave mid-state.
const loop = machinePrelude + `
func (m *Module) fn2(v0 int32, v1 int64) int64 {
	var v2, v3, v4, v5, v6 int64
l9:
	{
		t0 := m.g0
		m.g0 = t0 - i32(3)
		{
			t1 := m.g0
			if int32(bits.LeadingZeros32(uint32(t1))) != 0 {
				goto l1
			}
			t2 := m.fn1()
			m.g0 = t2
		}
	l1:
		switch v0 {
		case 0:
			v2 = v1
			v3 = v1 + i64(40)
			v4 = i64(0)
			v0 = i32(1)
			goto l9
		case 1:
			if !(v2 < v3) {
				v0 = i32(3)
				goto l9
			}
			fallthrough
		case 2:
			v5 = v2 * i64(3)
			v6 = v2 << 1
			if uint64(v5) < uint64(v3) {
				v4 = v4 + i64(1000)
			}
			v4 = v4 + (v5 ^ int64(uint32(v2)))
			v2 = v2 + i64(1)
			v0 = i32(1)
			goto l9
		case 3:
			return v4 + v2<<20 + v5 + v6>>3
		}
	}
	return -1
}

func i32(x int32) int32 { return x }

func i64(x int64) int64 { return x }

// Run runs fn2 from fuel and returns its result, the fuel left and the
// yields.
func Run(fuel int32, start int64) (int64, int32, int) {
	m := &Module{g0: fuel}
	r := m.fn2(0, start)
	return r, m.g0, m.yields
}
`

func TestNarrowLoops(t *testing.T) {
	n, out := direct(t, loop)
	if n == 0 {
		t.Fatal("no jump made direct")
	}
	typeCheck(t, out)
	for _, want := range []string{
		// the guard, where the loop is entered: 32-bit host, not left,
		// the locals live there fit (v5: the exits read every narrowed
		// local)
		"\t\tif ^uint(0)>>32 == 0 && !teastickN0off && v2 == int64(int32(v2)) && v3 == int64(int32(v3)) && v5 == int64(int32(v5)) {\n\t\t\tteastickN0v2 = int32(v2)\n\t\t\tteastickN0v3 = int32(v3)\n\t\t\tteastickN0v5 = int32(v5)\n\t\t\tgoto teastickN0ts1\n",
		// comparisons of two narrowed locals, in 32 bits
		"if !(teastickN0v2 < teastickN0v3) {",
		"if uint32(teastickN0v5) < uint32(teastickN0v3) {",
		// an assignment that does not fit leaves the copies for the
		// rest of the original state, split off after it
		"teastickN0off = true\n\t\t\t\t\tgoto teastickN0rts2_1\n",
		// a jump out goes through a stub writing the shadows back
		"teastickN0xts3:\n\t\t{\n\t\t\tv2 = int64(teastickN0v2)\n\t\t\tv3 = int64(teastickN0v3)\n\t\t\tv5 = int64(teastickN0v5)\n\t\t\tgoto ts3\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`teastickN0rts2_1:\s*\{\s*v6 = v2 << 1\n`).MatchString(out) {
		t.Errorf("state 2 not split after its first narrowed assignment:\n%s", out)
	}
	// v4 and v6 are only added to, shifted left and read by state 3,
	// outside the loop: their high words are not read in it.
	for _, v := range []string{"v1", "v4", "v6"} {
		if strings.Contains(out, "teastickN0"+v+" ") {
			t.Errorf("%s narrowed:\n%s", v, out)
		}
	}
}

// A loop whose locals are only ever truncated is left alone: Go already
// drops their high words.
func TestNarrowLoopsLeavesTruncated(t *testing.T) {
	src := strings.Replace(loop, "if !(v2 < v3) {", "if !(int32(v2) < int32(v3)) {", 1)
	src = strings.Replace(src, "if uint64(v5) < uint64(v3) {", "if uint32(v5) < uint32(v3) {", 1)
	src = strings.Replace(src, "return v4 + v2<<20 + v5 + v6>>3", "return int64(int32(v4 + v2<<20 + v5 + v6))", 1)
	_, out := direct(t, src)
	typeCheck(t, out)
	if strings.Contains(out, "teastickN0") {
		t.Errorf("narrowed a loop that reads no high word:\n%s", out)
	}
}

// The copies compute what the original does, on the host (where they
// are dead code) and on 32-bit arm (where they run), for starts inside
// 32 bits, crossing 2^31 and -2^31 mid-loop, and outside them.
func TestNarrowLoopsRuns(t *testing.T) {
	_, out := direct(t, loop)
	if !regexp.MustCompile(`teastickN0ts[0-9]+:`).MatchString(out) {
		t.Fatalf("no copy in\n%s", out)
	}
	dir := t.TempDir()
	writeModule(t, dir, map[string]string{
		"go.mod": "module x\n\ngo 1.24\n",
		"a/m.go": loop,
		"b/m.go": out,
		"main.go": `package main

import (
	"fmt"
	"os"

	a "x/a"
	b "x/b"
)

func main() {
	runs, yields := 0, 0
	for _, start := range []int64{0, 5, -17, 1<<31 - 100, 1<<31 - 20, 1<<31 - 1, 1 << 31, -1 << 31, -1<<31 - 7, 1<<31/3 - 5, 1 << 40, -1 << 40} {
		for fuel := int32(-1); fuel < 60; fuel += 7 {
			r1, f1, y1 := a.Run(fuel, start)
			r2, f2, y2 := b.Run(fuel, start)
			if r1 != r2 || f1 != f2 || y1 != y2 {
				fmt.Printf("fuel %d start %d: (%d, %d, %d) rewritten (%d, %d, %d)\n", fuel, start, r1, f1, y1, r2, f2, y2)
				os.Exit(1)
			}
			runs++
			yields += y1
		}
	}
	fmt.Println(runs, "runs", yields, "yields")
}
`,
	})
	onHostAndArm(t, dir, func(t *testing.T, res []byte) {
		if !bytes.Contains(res, []byte(" yields")) || bytes.Contains(res, []byte(" 0 yields")) {
			t.Fatalf("output %q: want runs that yield", res)
		}
	})
}
