package translate

import (
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/ast/astutil"
)

// 64-bit comparisons in halves (RATIONALE.md, "Native actors",
// comparisons in halves). Go compiled to WebAssembly keeps its ints,
// lengths and indexes in i64, so a Go guest's every loop test and bounds
// check is a 64-bit comparison. Go's compiler for a 32-bit host splits
// one into its words and computes the result as a value: the high words'
// test, their equality and the low words' test each set a register, and
// two logic operations join them, twelve arm instructions and three
// registers before the branch. wordCompares writes each comparison of two
// int64 or two uint64 values as a call of a helper that compares the
// high words and then, only when they are equal, the low ones, with
// && and ||: Go compiles those to branches, five instructions and no
// register. On a 64-bit host the helpers are the comparison itself (their
// condition is a constant), and every helper is small enough to inline.
// The operands are evaluated once each, in their order: > and >= keep
// their operands' order in the call and swap them inside the helper.

// compareHelpers names the helper for each comparison, by signedness.
var compareHelpers = map[token.Token][2]string{
	token.EQL: {"teastickEq", "teastickEq"},
	token.NEQ: {"teastickNe", "teastickNe"},
	token.LSS: {"teastickLtS", "teastickLtU"},
	token.LEQ: {"teastickLeS", "teastickLeU"},
	token.GTR: {"teastickGtS", "teastickGtU"},
	token.GEQ: {"teastickGeS", "teastickGeU"},
}

const compareHelper = `
// teastickHalves: a 32-bit host, where the comparison helpers compare a
// 64-bit value's words with branches.
const teastickHalves = ^uint(0)>>32 == 0

//go:nosplit
func teastickEq[T int64 | uint64](x, y T) bool {
	if teastickHalves {
		return uint32(x>>32) == uint32(y>>32) && uint32(x) == uint32(y)
	}
	return x == y
}

//go:nosplit
func teastickNe[T int64 | uint64](x, y T) bool {
	if teastickHalves {
		return uint32(x>>32) != uint32(y>>32) || uint32(x) != uint32(y)
	}
	return x != y
}

//go:nosplit
func teastickLtS(x, y int64) bool {
	if teastickHalves {
		xh, yh := int32(x>>32), int32(y>>32)
		return xh < yh || xh == yh && uint32(x) < uint32(y)
	}
	return x < y
}

//go:nosplit
func teastickLtU(x, y uint64) bool {
	if teastickHalves {
		xh, yh := uint32(x>>32), uint32(y>>32)
		return xh < yh || xh == yh && uint32(x) < uint32(y)
	}
	return x < y
}

//go:nosplit
func teastickLeS(x, y int64) bool { return !teastickLtS(y, x) }

//go:nosplit
func teastickLeU(x, y uint64) bool { return !teastickLtU(y, x) }

//go:nosplit
func teastickGtS(x, y int64) bool { return teastickLtS(y, x) }

//go:nosplit
func teastickGtU(x, y uint64) bool { return teastickLtU(y, x) }

//go:nosplit
func teastickGeS(x, y int64) bool { return !teastickLtS(x, y) }

//go:nosplit
func teastickGeU(x, y uint64) bool { return !teastickLtU(x, y) }
`

// wordCompares rewrites every comparison of two int64 or two uint64
// operands in the methods of f (a whole wasm2go module, after the other
// passes: the methods are the module's functions) as a call of its
// helper, and adds the helpers. The package-level helpers stay as they
// are: they must stay small enough to inline. It type-checks f to know the
// operands' types, and refuses a module that does not check or already
// declares a helper's name. Comparisons of constants, and of other types
// (type parameters included), are left as they are.
func wordCompares(fset *token.FileSet, f *ast.File) (int, error) {
	names := map[string]bool{"teastickHalves": true}
	for _, h := range compareHelpers {
		names[h[0]], names[h[1]] = true, true
	}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	conf := types.Config{Importer: importer.Default()}
	pkg, err := conf.Check(f.Name.Name, fset, []*ast.File{f}, info)
	if err != nil {
		return 0, fmt.Errorf("compares: type-check: %w", err)
	}
	for n := range names { // any package-level declaration
		if pkg.Scope().Lookup(n) != nil {
			return 0, errors.New("wasm2go output already declares " + n)
		}
	}
	i64, u64 := types.Typ[types.Int64], types.Typ[types.Uint64]
	count := 0
	rewrite := func(c *astutil.Cursor) bool {
		be, ok := c.Node().(*ast.BinaryExpr)
		if !ok {
			return true
		}
		h, ok := compareHelpers[be.Op]
		if !ok || info.Types[be].Value != nil {
			return true
		}
		tx, ty := info.Types[be.X].Type, info.Types[be.Y].Type
		if tx == nil || ty == nil {
			return true
		}
		var fn string
		switch {
		case types.Identical(tx, i64) && types.Identical(ty, i64):
			fn = h[0]
		case types.Identical(tx, u64) && types.Identical(ty, u64):
			fn = h[1]
		default:
			return true
		}
		c.Replace(&ast.CallExpr{Fun: ast.NewIdent(fn), Args: []ast.Expr{be.X, be.Y}})
		count++
		return true
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil {
			astutil.Apply(fd, nil, rewrite)
		}
	}
	if count == 0 {
		return 0, nil
	}
	helper, err := parser.ParseFile(fset, "teastick_compare.go", "package p\n"+compareHelper, parser.ParseComments)
	if err != nil {
		return 0, err
	}
	f.Decls = append(f.Decls, helper.Decls...)
	return count, nil
}
