package translate

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"

	"golang.org/x/tools/go/ast/astutil"
)

// Table instructions out of bounds (WebAssembly 2.0 §4.4.6): table.get,
// table.set, table.fill, table.copy and table.init trap, before writing
// anything, when an index or a range [i, i+n) reaches past the table's or
// the element segment's length (a dropped segment's is 0); operands are
// unsigned i32. wazero's interpreter traps then with "invalid table
// access". wasm2go indexes (table.get, table.set) or slices (its helpers
// table_init, table_copy and table_fill) the Go slice, so Go's check
// traps at the same places, but as a runtime.Error that nativeTrap can
// only call an out of bounds memory access. tableTraps makes each check
// explicit, with wazero's text, ahead of Go's, which stays as a backstop:
// a check that missed a case would still trap, with the old text.
// table.size, table.grow (-1 past the maximum) and elem.drop cannot trap.

// Names tableTraps adds to a generated package.
const (
	tableElem  = "teastickTableElem"
	tableRange = "teastickTableRange"
)

// tableHelpers are wasm2go v0.4.21's table helpers that slice a table or
// a segment, with their parameters as it names them, and the ranges
// checked first in each: {index, count, table or segment}.
var tableHelpers = map[string]struct {
	params []string
	ranges [][3]string
}{
	"table_init": {[]string{"tab", "elems", "dest", "src", "n"}, [][3]string{{"dest", "n", "tab"}, {"src", "n", "elems"}}},
	"table_copy": {[]string{"dst", "tab", "dest", "src", "n"}, [][3]string{{"dest", "n", "dst"}, {"src", "n", "tab"}}},
	"table_fill": {[]string{"tab", "dest", "val", "n"}, [][3]string{{"dest", "n", "tab"}}},
}

const tableTrapHelpers = `
// teastickTableElem is table.get's and table.set's element, trapping as
// wazero does.
func teastickTableElem[I int | int32 | int64](t []any, i I) *any {
	if teastickTableIndex(i) >= uint64(len(t)) {
		panic("invalid table access")
	}
	return &t[teastickTableIndex(i)]
}

// teastickTableRange traps as wazero does unless [i, i+n) is within a
// table or an element segment of length l.
func teastickTableRange[I, N int | int32 | int64](i I, n N, l int) {
	a, b := teastickTableIndex(i), teastickTableIndex(n)
	if a > uint64(l) || b > uint64(l)-a {
		panic("invalid table access")
	}
}

// teastickTableIndex is an index or a count as WebAssembly reads it: an
// i32 is unsigned.
func teastickTableIndex[I int | int32 | int64](i I) uint64 {
	if v, ok := any(i).(int32); ok {
		return uint64(uint32(v))
	}
	return uint64(i)
}
`

// tableTraps gives table instructions wazero's trap: every index of a
// table field of Module (table.get's and table.set's; call_indirect's is
// teastickTable already) becomes *teastickTableElem(table, index), and
// the checks of tableHelpers go first in wasm2go's helpers. It adds its
// helpers only to modules that use them, and fails on helpers whose
// parameters are not the ones it checks.
func tableTraps(fset *token.FileSet, f *ast.File) error {
	tables := map[string]bool{}
	st, err := moduleStruct(f)
	if err != nil {
		return err
	}
	// Tables are []any, or *[]any when imported (wasm2go's
	// createModuleStruct); elements is [][]any.
	for _, fl := range st.Fields.List {
		t := fl.Type
		if p, ok := t.(*ast.StarExpr); ok {
			t = p.X
		}
		if at, ok := t.(*ast.ArrayType); ok && at.Len == nil && isIdent(at.Elt, "any") {
			for _, n := range fl.Names {
				tables[n.Name] = true
			}
		}
	}
	used := false
	astutil.Apply(f, nil, func(c *astutil.Cursor) bool {
		ix, ok := c.Node().(*ast.IndexExpr)
		if !ok || !isField(ix.X, tables) {
			return true
		}
		c.Replace(&ast.StarExpr{X: &ast.CallExpr{Fun: ast.NewIdent(tableElem), Args: []ast.Expr{ix.X, ix.Index}}})
		used = true
		return true
	})
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil {
			continue
		}
		h, ok := tableHelpers[fd.Name.Name]
		if !ok {
			continue
		}
		var params []string
		for _, p := range fd.Type.Params.List {
			for _, n := range p.Names {
				params = append(params, n.Name)
			}
		}
		if !slices.Equal(params, h.params) {
			return fmt.Errorf("wasm2go's %s has parameters %v, want %v", fd.Name.Name, params, h.params)
		}
		var checks []ast.Stmt
		for _, r := range h.ranges {
			checks = append(checks, &ast.ExprStmt{X: &ast.CallExpr{Fun: ast.NewIdent(tableRange), Args: []ast.Expr{
				ast.NewIdent(r[0]), ast.NewIdent(r[1]), &ast.CallExpr{Fun: ast.NewIdent("len"), Args: []ast.Expr{ast.NewIdent(r[2])}},
			}}})
		}
		fd.Body.List = append(checks, fd.Body.List...)
		used = true
	}
	if !used {
		return nil
	}
	// Parsed into f's file set, so that they print as written.
	helpers, err := parser.ParseFile(fset, "teastick_tables.go", "package p\n"+tableTrapHelpers, 0)
	if err != nil {
		return err
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && (fd.Name.Name == tableElem || fd.Name.Name == tableRange) {
			return errors.New("wasm2go output already defines " + fd.Name.Name)
		}
	}
	f.Decls = append(f.Decls, helpers.Decls...)
	return nil
}

// isField: e is m.<field> or *m.<field> (an imported table or memory),
// for a field in names.
func isField(e ast.Expr, names map[string]bool) bool {
	if p, ok := e.(*ast.StarExpr); ok {
		e = p.X
	}
	if p, ok := e.(*ast.ParenExpr); ok {
		return isField(p.X, names)
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	_, recv := sel.X.(*ast.Ident)
	return recv && names[sel.Sel.Name]
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
