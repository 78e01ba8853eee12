package translate

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// machine is a state machine as wasm2go writes Go's WebAssembly backend's
// functions, with the meter's check at the loop header (fn1 is the
// meter's yield): a chain of blocks down to the switch, a default in the
// middle, cases that only jump out, a case that falls through, a computed
// jump, a constant in no case (state 7: the default), an exit by return,
// and a jump to the loop from outside the switch (after l4).
const machine = machinePrelude + `
func (m *Module) fn2(v0, v1 int32) int32 {
	var v2 int32
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
		{
			{
				switch v0 {
				case 5:
					goto l3
				default:
					goto l4
				case 0, 1:
					t3 := v2*31 + v1
					v2 = t3
					if v1&1 == 0 {
						v0 = i32(3)
						goto l9
					}
					fallthrough
				case 2:
					v1 = v1 - 1
					if v1 <= 0 {
						v0 = i32(5)
						goto l9
					}
					v0 = i32(2) + v1&1
					goto l9
				case 3:
					v2 = v2 ^ 0x55
					v1 = v1 - 1
					v0 = i32(7)
					goto l9
				case 4:
					v2 = v2 + 1
					v0 = i32(0)
					goto l9
				}
			}
		l3:
			return v2
		}
	l4:
		v2 = v2 + 100
		v0 = i32(1)
		goto l9
	}
}

func i32(x int32) int32 { return x }

// Run runs fn2 from fuel and returns its result, the fuel left and the
// yields.
func Run(fuel, v0, v1 int32) (int32, int32, int) {
	m := &Module{g0: fuel}
	r := m.fn2(v0, v1)
	return r, m.g0, m.yields
}
`

// direct applies directDispatch to every method of src (yield fn1) and
// returns the jumps it made direct and the formatted result.
func direct(t *testing.T, src string) (int, string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "m.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil {
			n += directDispatch(fset, fd, "fn1")
		}
	}
	var b bytes.Buffer
	if err := format.Node(&b, fset, f); err != nil {
		t.Fatal(err)
	}
	return n, b.String()
}

// typeCheck runs go/types on src, which checks goto's rules (no jump into
// a block or over a declaration) and refuses unused labels.
func typeCheck(t *testing.T, src string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "m.go", src, 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	conf := types.Config{Importer: importer.Default()}
	if _, err := conf.Check("p", fset, []*ast.File{f}, nil); err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
}

func formatted(t *testing.T, src string) string {
	t.Helper()
	b, err := format.Source([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// machinePrelude is the module of the test machines: the meter's fuel
// global and its yield import, fn1.
const machinePrelude = `package p

import "math/bits"

type Module struct {
	g0     int32
	yields int
}

func (m *Module) fn1() int32 {
	m.yields++
	return 7
}
`

// redirected matches a made-direct jump: the tag set to K, a copy of the
// check whose skip goes where the jump goes, the jump.
var redirected = regexp.MustCompile(`v0 = i32\(([0-9]+)\)\n\s*\{\n` +
	`\s*t0 := m\.g0\n\s*m\.g0 = t0 - i32\(3\)\n\s*\{\n` +
	`\s*t1 := m\.g0\n\s*if int32\(bits\.LeadingZeros32\(uint32\(t1\)\)\) != 0 \{\n\s*goto (ts[A-Za-z0-9]+)\n\s*\}\n` +
	`\s*t2 := m\.fn1\(\)\n\s*m\.g0 = t2\n\s*\}\n\s*\}\n\s*goto (ts[A-Za-z0-9]+)\n`)

func TestDirectDispatch(t *testing.T) {
	n, out := direct(t, machine)
	typeCheck(t, out)
	want := map[string]string{"3": "ts3", "5": "ts5", "7": "tsDefault", "0": "ts0"}
	if n != len(want) {
		t.Fatalf("%d jumps made direct, want %d\n%s", n, len(want), out)
	}
	got := redirected.FindAllStringSubmatch(out, -1)
	if len(got) != len(want) {
		t.Fatalf("%d jumps with the check copied, want %d\n%s", len(got), len(want), out)
	}
	for _, g := range got {
		if g[2] != want[g[1]] || g[3] != want[g[1]] {
			t.Errorf("state %s: check skips to %s, jumps to %s; want %s", g[1], g[2], g[3], want[g[1]])
		}
	}
	// Every jump to a state outside the dispatch switch is one of those:
	// the switch has one per clause (6), each direct jump two.
	if c := strings.Count(out, "goto ts"); c != 6+2*len(want) {
		t.Errorf("%d gotos to states, want %d\n%s", c, 6+2*len(want), out)
	}
	// The computed jump and the one from outside the switch still go
	// through the loop header.
	if c := strings.Count(out, "goto l9"); c != 2 {
		t.Errorf("%d gotos to the loop header, want 2\n%s", c, out)
	}
	if n, again := direct(t, out); n != 0 || again != out {
		t.Errorf("a second pass changed %d jumps", n)
	}
}

// TestDirectDispatchRuns runs the machine as written and rewritten on the
// same inputs: same results, same fuel left, same yields.
func TestDirectDispatchRuns(t *testing.T) {
	_, out := direct(t, machine)
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module x\n\ngo 1.24\n",
		"a/m.go": machine,
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
	for fuel := int32(-1); fuel < 12; fuel += 4 {
		for v0 := int32(-1); v0 <= 8; v0++ {
			for v1 := int32(-5); v1 <= 60; v1++ {
				r1, f1, y1 := a.Run(fuel, v0, v1)
				r2, f2, y2 := b.Run(fuel, v0, v1)
				if r1 != r2 || f1 != f2 || y1 != y2 {
					fmt.Printf("fuel %d state %d n %d: (%d, %d, %d) rewritten (%d, %d, %d)\n", fuel, v0, v1, r1, f1, y1, r2, f2, y2)
					os.Exit(1)
				}
				runs++
				yields += y1
			}
		}
	}
	fmt.Println(runs, "runs", yields, "yields")
}
`,
	}
	writeModule(t, dir, files)
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), moduleEnv...)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	t.Logf("%s", bytes.TrimSpace(res))
	if !bytes.Contains(res, []byte(" yields")) || bytes.Contains(res, []byte(" 0 yields")) {
		t.Fatalf("output %q: want runs that yield", res)
	}
}

// A loop whose every jump becomes direct loses its label (Go refuses an
// unused one).
func TestDirectDispatchDropsLabel(t *testing.T) {
	src := strings.NewReplacer(
		"v0 = i32(2) + v1&1\n", "v0 = i32(3)\n",
		"\tl4:\n\t\tv2 = v2 + 100\n\t\tv0 = i32(1)\n\t\tgoto l9\n", "\tl4:\n\t\tpanic(\"unreachable\")\n",
	).Replace(machine)
	n, out := direct(t, src)
	typeCheck(t, out)
	if n != 5 || strings.Contains(out, "l9") {
		t.Fatalf("%d jumps made direct, want 5, and no l9 left\n%s", n, out)
	}
}

// Anything that is not exactly the pattern is left as it was.
func TestDirectDispatchLeavesAlone(t *testing.T) {
	cases := []struct{ name, old, new string }{
		{"break", "v2 = v2 + 1\n", "v2 = v2 + 1\n\t\t\t\t\tif v1 == 9 {\n\t\t\t\t\t\tbreak\n\t\t\t\t\t}\n"},
		{"statement before the switch", "\t\t\t{\n\t\t\t\tswitch v0 {", "\t\t\t{\n\t\t\t\tv2 = v2 + 0\n\t\t\t\tswitch v0 {"},
		{"labeled block before the switch", "\t\t\t{\n\t\t\t\tswitch v0 {", "\t\t\tl7:\n\t\t\t{\n\t\t\t\tswitch v0 {"},
		{"label reused", "\tl4:\n", "\tts2:\n\t\tgoto l4\n\tl4:\n"},
		{"other yield", "t2 := m.fn1()", "t2 := m.fn3()"},
		{"other fuel", "t1 := m.g0\n", "t1 := m.g1\n"},
		{"check inverted", "!= 0 {\n\t\t\t\tgoto l1", "== 0 {\n\t\t\t\tgoto l1"},
		{"statement after the check", "\tl1:\n", "\t\tv2 = v2 + 0\n\tl1:\n"},
		{"case not a constant", "case 4:", "case v1:"},
		{"tag not a variable", "switch v0 {", "switch v0 + 0 {"},
		{"tag redeclared", "t3 := v2*31 + v1", "v0 := v2*31 + v1\n\t\t\t\t\tt3 := v0"},
	}
	extra := "\nfunc (m *Module) fn3() int32 { return 0 }\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(machine, tc.old, tc.new, 1)
			if src == machine {
				t.Fatalf("%q not in the machine", tc.old)
			}
			src += extra
			if tc.name == "other fuel" {
				src = strings.Replace(src, "g0     int32\n", "g0, g1 int32\n", 1)
			}
			n, out := direct(t, src)
			if n != 0 || out != formatted(t, src) {
				t.Errorf("changed %d jumps\n%s", n, out)
			}
		})
	}
}

// A constant in no case, with no default, leaves the switch: that jump
// keeps going through the loop header; the others become direct.
func TestDirectDispatchNoDefault(t *testing.T) {
	src := strings.Replace(machine, "\t\t\t\tdefault:\n\t\t\t\t\tgoto l4\n", "\t\t\t\tcase 6:\n\t\t\t\t\tgoto l4\n", 1)
	n, out := direct(t, src)
	typeCheck(t, out)
	if n != 3 || strings.Count(out, "goto l9") != 3 || !strings.Contains(out, "goto tsEnd") {
		t.Fatalf("%d jumps made direct, want 3, with 3 to l9 left and a way past the switch\n%s", n, out)
	}
}

// moduleEnv builds a writeModule tree on its own: its go.mod, no
// workspace.
var moduleEnv = []string{"GOFLAGS=-mod=mod", "GOWORK=off"}

// writeModule writes files (path: content) under dir: a Go module the
// tests build and run to compare generated code with what it rewrote.
func writeModule(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, s := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
