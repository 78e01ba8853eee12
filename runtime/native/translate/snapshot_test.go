package translate

import (
	"go/parser"
	"go/token"
	"math"
	"strings"
	"testing"

	"github.com/teastick/teastick/runtime/native"
)

// snapshotCode sets each snapshot global through its field, converting
// by the field's type, writes the snapshot as data, and refuses a global
// wasm2go gave no settable field.
func TestSnapshotCode(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "module.go", "package p\n\ntype Module struct {\n\tg0 int32\n\tg1 float64\n\tg2 [4]byte\n}\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	s := &native.Snapshot{Pages: 3, Clock: 2000, Denied: []string{"random.bytes"},
		Globals: []native.Global{{Index: 0, Value: 0xfffffffc}, {Index: 1, Value: math.Float64bits(3.25)}},
		Runs:    []native.Run{{Off: 16, Data: "a\x00\xff"}}}
	if err := snapshotCode(&b, f, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"case 0:\n\t\ti.m.g0 = int32(v)\n", "case 1:\n\t\ti.m.g1 = math.Float64frombits(v)\n",
		"Pages: 3,", "Clock: 2000,", `Denied: []string{"random.bytes"},`,
		"{Index: 1, Value: 0x400a000000000000},", `{Off: 0x10, Data: "a\x00\xff"},`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	for _, g := range []native.Global{{Index: 2}, {Index: 7}} {
		b.Reset()
		bad := &native.Snapshot{Globals: []native.Global{g}}
		if err := snapshotCode(&b, f, bad); err == nil || !strings.Contains(err.Error(), "no Module field") {
			t.Errorf("global %d: %v, want a refusal", g.Index, err)
		}
	}
	// Without a snapshot: a SetGlobal that sets nothing, no data.
	b.Reset()
	if err := snapshotCode(&b, f, nil); err != nil || strings.Contains(b.String(), "snapshot") || strings.Contains(b.String(), "case") {
		t.Errorf("no snapshot: %v\n%s", err, b.String())
	}
}
