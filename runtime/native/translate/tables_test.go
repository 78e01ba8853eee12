package translate

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// A module in wasm2go v0.4.21's shape (its table fields, a table.get, a
// table.set on an imported table, a table.fill and its helper).
const tablesSrc = `package p

type Module struct {
	t0       []any
	t1       *[]any
	elements [][]any
	other    [][]any
}

func (m *Module) fn0(v0 int32) {
	t0 := m.t0[v0]
	(*m.t1)[v0] = t0
	m.other[0] = nil
	table_fill(m.t0, v0, t0, v0)
}

func table_fill[T int32 | int64](tab []any, dest T, val any, n T) {
	x := uint64(dest)
	y := x + uint64(n)
	clear(tab[x:y:len(tab)])
}
`

func tableTrapsOn(t *testing.T, src string) (string, error) {
	t.Helper()
	return passOn(t, src, tableTraps)
}

// passOn runs one of rewrite's passes on the file src and prints the
// result.
func passOn(t *testing.T, src string, pass func(*token.FileSet, *ast.File) error) (string, error) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "module.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if err := pass(fset, f); err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := format.Node(&out, fset, f); err != nil {
		t.Fatal(err)
	}
	return out.String(), nil
}

// Every index of a table goes through the check, wasm2go's helpers check
// first, and nothing else changes.
func TestTableTraps(t *testing.T) {
	out, err := tableTrapsOn(t, tablesSrc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"t0 := *teastickTableElem(m.t0, v0)",
		"*teastickTableElem((*m.t1), v0) = t0",
		"m.other[0] = nil",
		"{\n\tteastickTableRange(dest, n, len(tab))\n\tx := uint64(dest)",
		"func teastickTableElem[",
		"func teastickTableRange[",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	f, err := parser.ParseFile(token.NewFileSet(), "", out, 0)
	if err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, out)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if ix, ok := n.(*ast.IndexExpr); ok && isField(ix.X, map[string]bool{"t0": true, "t1": true}) {
			t.Errorf("a table indexed unchecked at %v", ix.Pos())
		}
		return true
	})
}

// A module without table instructions is left as it was.
func TestTableTrapsNone(t *testing.T) {
	src := "package p\n\ntype Module struct {\n\tt0 []any\n}\n\nfunc (m *Module) fn0() int32 { return int32(len(m.t0)) }\n"
	out, err := tableTrapsOn(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := format.Source([]byte(src)); out != string(want) {
		t.Errorf("changed:\n%s", out)
	}
}

// A helper whose parameters are not the ones the checks name fails the
// translation rather than checking the wrong operands.
func TestTableTrapsRefusesOtherHelper(t *testing.T) {
	src := strings.Replace(tablesSrc, "tab []any, dest T, val any, n T", "tab []any, dst T, val any, n T", 1)
	if _, err := tableTrapsOn(t, src); err == nil || !strings.Contains(err.Error(), "table_fill") {
		t.Fatalf("err %v, want table_fill's parameters refused", err)
	}
}
