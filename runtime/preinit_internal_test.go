package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// diffRuns holds exactly the bytes that differ, joining differences
// fewer than snapshotGap bytes apart, and counts memory past base as
// zero.
func TestDiffRuns(t *testing.T) {
	base := make([]byte, 64)
	mem := make([]byte, 128)
	mem[3], mem[5] = 1, 2 // one run: 3..5
	mem[40] = 3           // 5+16 < 40: a run of its own
	mem[100] = 4          // past base
	runs := diffRuns(base, mem)
	want := []struct {
		off  uint32
		data string
	}{{3, "\x01\x00\x02"}, {40, "\x03"}, {100, "\x04"}}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v", runs)
	}
	for i, r := range runs {
		if r.Off != want[i].off || r.Data != want[i].data {
			t.Errorf("run %d: %+v, want %+v", i, r, want[i])
		}
	}
	if r := diffRuns(mem, mem); len(r) != 0 {
		t.Errorf("no difference gave %+v", r)
	}
}

// The meter's pass names the first thing in a module that a snapshot of
// memory and globals would not hold, and lists the mutable globals.
func TestSnapshotBlockers(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install Debian's wabt (make deps)")
	}
	const tbl = `(table $t 2 funcref) (elem $e func $f) (func $f)`
	for _, tc := range []struct{ body, want string }{
		{`(global (mut i32) (i32.const 0)) (global i64 (i64.const 1)) (global (mut f64) (f64.const 0))`, ""},
		{tbl + ` (func (table.set $t (i32.const 0) (ref.null func)))`, "it writes a table"},
		{tbl + ` (func (drop (table.grow $t (ref.null func) (i32.const 1))))`, "it writes a table"},
		{tbl + ` (func (table.fill $t (i32.const 0) (ref.null func) (i32.const 1)))`, "it writes a table"},
		{tbl + ` (func (table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1)))`, "it writes a table"},
		{tbl + ` (func (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1)))`, "it writes a table"},
		{tbl + ` (func (elem.drop $e))`, "it drops an element segment"},
		{`(data $d "x") (func (data.drop $d))`, "it drops a data segment"},
		{`(func $s) (start $s)`, "it has a start function"},
		{`(import "env" "g" (global i32))`, "it imports a global"},
		{`(global (mut funcref) (ref.null func))`, "global 0 is a mutable 0x70"},
	} {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
		os.WriteFile(src, []byte(`(module `+tc.body+` (memory 1))`), 0o644)
		if msg, err := exec.Command(wat2wasm, src, "-o", dst).CombinedOutput(); err != nil {
			t.Fatalf("%s: wat2wasm: %v\n%s", tc.body, err, msg)
		}
		out, _ := os.ReadFile(dst)
		m, err := precheck(out)
		if err != nil {
			t.Fatalf("%s: precheck: %v", tc.body, err)
		}
		_, sh, err := meterShaped(m)
		if err != nil {
			t.Fatalf("%s: meter: %v", tc.body, err)
		}
		if sh.stateful != tc.want {
			t.Errorf("%s: %q, want %q", tc.body, sh.stateful, tc.want)
		}
		if tc.want == "" && fmt.Sprint(sh.mutable) != "[0 2]" {
			t.Errorf("mutable globals %v, want [0 2]", sh.mutable)
		}
	}
}
