package translate_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/native/translate"
)

// outDir is a fresh directory under build/_native (inside the module, so
// the generated packages resolve their imports; skipped by ./...).
func outDir(t *testing.T) (dir, importPath string) {
	t.Helper()
	root := filepath.Dir(actortest.Dir())
	base := filepath.Join(root, "build", "_native")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := os.MkdirTemp(base, "translate-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d, "github.com/teastick/teastick/build/_native/" + filepath.Base(d)
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Write translates checked actors into packages that build, with the
// same bytes every time.
func TestWrite(t *testing.T) {
	edge, spin := actortest.Wat(t, "edge"), actortest.Wat(t, "spin")
	actors := []translate.Actor{
		{Name: "spin", CID: actortest.CID(spin), Module: spin},
		{Name: "edge-1", CID: actortest.CID(edge), Module: edge, Limits: runtime.Limits{MemoryPages: 16}},
	}
	dir, ip := outDir(t)
	if err := translate.Write(dir, ip, actors); err != nil {
		t.Fatal(err)
	}
	first := readTree(t, dir)
	for _, f := range []string{"actors.go", "a_spin/module.go", "a_spin/register.go", "a_edge_1/module.go", "a_edge_1/register.go"} {
		if first[f] == nil {
			t.Errorf("no %s in the output (%d files)", f, len(first))
		}
	}
	if !bytes.Contains(first["a_edge_1/module.go"], []byte("const maxMem = 16")) {
		t.Error("edge's memory maximum is not the limit of 16 pages")
	}
	if !bytes.Contains(first["a_edge_1/module.go"], []byte(`panic("stack overflow")`)) {
		t.Error("no call-depth check in edge")
	}
	// wasm2go runs without -unsafe: package unsafe appears only in the
	// six word helpers, each accessing the slice its bounds check cut.
	for _, line := range bytes.Split(first["a_edge_1/module.go"], []byte("\n")) {
		if bytes.Contains(line, []byte("unsafe.")) && !bytes.Contains(line, []byte("(unsafe.Pointer(&b[0]))")) {
			t.Errorf("generated code uses unsafe outside the word helpers: %s", line)
		}
	}
	if n := bytes.Count(first["a_edge_1/module.go"], []byte("unsafe.Pointer(&b[0])")); n != 6 {
		t.Errorf("%d word accesses through unsafe, want the six helpers'", n)
	}
	cmd := exec.Command("go", "vet", ip, ip+"/a_spin", ip+"/a_edge_1")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet of the generated packages: %v\n%s", err, out)
	}
	if err := translate.Write(dir, ip, actors); err != nil {
		t.Fatal(err)
	}
	second := readTree(t, dir)
	if len(first) != len(second) {
		t.Fatalf("%d files, then %d", len(first), len(second))
	}
	for f, b := range first {
		if !bytes.Equal(b, second[f]) {
			t.Errorf("%s differs between two translations", f)
		}
	}
}

// Modules the runtime refuses are not translated: the same checks run
// before translation as at load.
func TestWriteRefuses(t *testing.T) {
	edge := actortest.Wat(t, "edge")
	cases := []struct {
		name string
		a    translate.Actor
		want error
	}{
		{"cid", translate.Actor{Name: "x", CID: actortest.CID(actortest.Wat(t, "spin")), Module: edge}, runtime.ErrCIDMismatch},
		{"bigmem", translate.Actor{Name: "x", CID: actortest.CID(actortest.Wat(t, "bigmem")), Module: actortest.Wat(t, "bigmem")}, runtime.ErrInvalidModule},
		{"memlimit", translate.Actor{Name: "x", CID: actortest.CID(edge), Module: edge, Limits: runtime.Limits{MemoryPages: 99999}}, runtime.ErrInvalidLimits},
		{"meterimport", translate.Actor{Name: "x", CID: actortest.CID(actortest.Wat(t, "meterimport")), Module: actortest.Wat(t, "meterimport")}, runtime.ErrInvalidModule},
		{"badimport", translate.Actor{Name: "x", CID: actortest.CID(actortest.Wat(t, "badimport")), Module: actortest.Wat(t, "badimport")}, runtime.ErrInvalidModule},
		{"inittrap", translate.Actor{Name: "x", CID: actortest.CID(actortest.Wat(t, "inittrap")), Module: actortest.Wat(t, "inittrap")}, runtime.ErrInvalidModule},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, ip := outDir(t)
			err := translate.Write(dir, ip, []translate.Actor{tc.a})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "actors.go")); err == nil {
				t.Error("wrote a table for a refused actor")
			}
		})
	}
	dir, ip := outDir(t)
	err := translate.Write(dir, ip, []translate.Actor{{Name: "a", CID: actortest.CID(edge), Module: edge}, {Name: "b", CID: actortest.CID(edge), Module: edge, Limits: runtime.Limits{MemoryPages: 8}}})
	if err == nil || !strings.Contains(err.Error(), "different memory limits") {
		t.Fatalf("one CID under two memory limits: %v", err)
	}
}

// TestWriteKeepsDoc: Write replaces what an earlier Write generated (an
// actor no longer in the list loses its package) and keeps the rest of
// the directory, such as the committed doc.go of build/_native/stick and
// rt, without which a fresh clone's go mod tidy cannot resolve their
// importers.
func TestWriteKeepsDoc(t *testing.T) {
	edge, spin := actortest.Wat(t, "edge"), actortest.Wat(t, "spin")
	dir, ip := outDir(t)
	doc := []byte("// Package " + filepath.Base(dir) + " is a table.\npackage " + filepath.Base(dir) + "\n")
	if err := os.WriteFile(filepath.Join(dir, "doc.go"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	both := []translate.Actor{
		{Name: "spin", CID: actortest.CID(spin), Module: spin},
		{Name: "edge", CID: actortest.CID(edge), Module: edge},
	}
	if err := translate.Write(dir, ip, both); err != nil {
		t.Fatal(err)
	}
	if err := translate.Write(dir, ip, both[:1]); err != nil {
		t.Fatal(err)
	}
	tree := readTree(t, dir)
	if !bytes.Equal(tree["doc.go"], doc) {
		t.Errorf("doc.go is %q after Write, want it kept", tree["doc.go"])
	}
	if tree["a_edge/module.go"] != nil {
		t.Error("a_edge, dropped from the list, is still in the output")
	}
	if tree["a_spin/module.go"] == nil || tree["actors.go"] == nil {
		t.Errorf("spin's package or actors.go missing (%d files)", len(tree))
	}
}

// The function table of a module is filled from package-level method
// expressions, not per instance with method values, and call_indirect
// passes the instance (staticElements); the package builds.
func TestWriteStaticElements(t *testing.T) {
	traps := actortest.Wat(t, "traps")
	dir, ip := outDir(t)
	if err := translate.Write(dir, ip, []translate.Actor{{Name: "traps", CID: actortest.CID(traps), Module: traps}}); err != nil {
		t.Fatal(err)
	}
	src := readTree(t, dir)["a_traps/module.go"]
	for _, want := range []string{"(*Module).fn", ".(func(*Module", "m.elements = [][]any{teastickElements0}"} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("no %q in the translation", want)
		}
	}
	cmd := exec.Command("go", "vet", ip+"/a_traps")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet: %v\n%s", err, out)
	}
}

// TestWriteDirectDispatch: the state machine of dispatch.wat (the shape
// Go's WebAssembly backend gives every function) is translated with its
// constant transitions as direct jumps, each after a copy of the loop
// header's meter check, and the package still passes go vet.
func TestWriteDirectDispatch(t *testing.T) {
	d := actortest.Wat(t, "dispatch")
	dir, ip := outDir(t)
	if err := translate.Write(dir, ip, []translate.Actor{{Name: "dispatch", CID: actortest.CID(d), Module: d}}); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "a_dispatch", "module.go"))
	if err != nil {
		t.Fatal(err)
	}
	// v0 = i32(K), then the check (its skip to tsJ), then goto tsJ.
	jump := regexp.MustCompile(`v0 = i32\(([0-9]+)\)\n\s*\{\n` +
		`\s*(t[0-9]+) := m\.(g[0-9]+)\n\s*m\.g[0-9]+ = t[0-9]+ - i32\([0-9]+\)\n\s*\{\n` +
		`\s*t[0-9]+ := m\.g[0-9]+\n\s*if int32\(bits\.LeadingZeros32\(uint32\(t[0-9]+\)\)\) != 0 \{\n\s*goto (ts[A-Za-z0-9]+)\n\s*\}\n` +
		`\s*t[0-9]+ := m\.fn[0-9]+\(\)\n\s*m\.g[0-9]+ = t[0-9]+\n\s*\}\n\s*\}\n\s*goto (ts[A-Za-z0-9]+)\n`)
	// States 0 (from 3), 1 (from 0), 4 (from 4) and 5, in no case: the
	// default. State 1's computed jump goes through the loop header.
	want := map[string]string{"0": "ts0", "1": "ts1", "4": "ts4", "5": "tsDefault"}
	got := jump.FindAllStringSubmatch(string(src), -1)
	if len(got) != len(want) {
		t.Fatalf("%d direct jumps, want %d\n%s", len(got), len(want), src)
	}
	for _, g := range got {
		if g[4] != want[g[1]] || g[5] != want[g[1]] {
			t.Errorf("state %s: the check skips to %s, the jump goes to %s, want %s", g[1], g[4], g[5], want[g[1]])
		}
	}
	// No jump to a state without the check: the switch's six, two each.
	if c := bytes.Count(src, []byte("goto ts")); c != 6+2*len(want) {
		t.Errorf("%d gotos to states, want %d", c, 6+2*len(want))
	}
	cmd := exec.Command("go", "vet", ip+"/a_dispatch")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet: %v\n%s", err, out)
	}
}
