package translate

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"

	"golang.org/x/tools/go/ast/astutil"
)

// Linear memory addresses in the host's word (RATIONALE.md, "Native
// actors", addresses in the host's word). A WebAssembly access reads or
// writes at base + offset, an unsigned i32 plus a constant, so up to
// 2^33 (WebAssembly 2.0 §4.4.7). wasm2go passes the address to its load
// and store helpers as a uint32 when the offset is 0 and as a uint64
// otherwise, indexes byte accesses with the same expressions, and the
// helpers compute the accessed range in uint64. On a 32-bit board (the
// Mk II's Cortex-A7, GOARCH=arm) every access then paid 64-bit additions
// and comparisons, and held register pairs in functions already short of
// registers. wordAddresses turns each address into a uint first
// (teastickAddr): the address itself on a 64-bit host; on a 32-bit host
// the address, or the largest uint for one of 2^32 and more, which no
// slice of linear memory (at most 2^31-1 bytes there) holds. Every access
// keeps Go's bounds check, against the same memory, and traps where it
// trapped: the helpers' range [a, a+n) is a slice expression, which Go
// refuses when a+n wraps (low above high) as when it passes the length.

// addrFunc is the helper wordAddresses adds.
const addrFunc = "teastickAddr"

const addrHelper = `
// teastickAddr is a linear memory address as an index in the host's
// word: on a 32-bit host, an address of 2^32 or more becomes the largest
// uint, which every access refuses as it refused the address.
//
//go:nosplit
func teastickAddr[T uint32 | uint64](addr T) uint {
	a := uint64(addr)
	if ^uint(0)>>32 == 0 && a>>32 != 0 {
		return ^uint(0)
	}
	return uint(a)
}
`

// wideHelpers are wasm2go v0.4.21's helpers for loads and stores wider
// than a byte, each beginning `a := uint64(addr)`: for each, the
// encoding/binary function it calls and the one wordAccesses puts in its
// place.
var wideHelpers = map[string][2]string{
	"load16": {"Uint16", "teastickLoad16"}, "load32": {"Uint32", "teastickLoad32"}, "load64": {"Uint64", "teastickLoad64"},
	"store16": {"PutUint16", "teastickStore16"}, "store32": {"PutUint32", "teastickStore32"}, "store64": {"PutUint64", "teastickStore64"},
}

// wordAddresses makes every access to the module's linear memory (the
// Module field mem, wasm2go's "memory") compute its address in the
// host's word: in the helpers of wideHelpers, and in each byte access
// indexed by a uint64 expression. It fails on a helper of another shape
// than the one it rewrites, so that a new wasm2go is read before it is
// trusted.
func wordAddresses(fset *token.FileSet, f *ast.File, mem string) error {
	used := false
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil {
			continue
		}
		if _, wide := wideHelpers[fd.Name.Name]; !wide {
			continue
		}
		if !isAddrDecl(fd.Body) {
			return fmt.Errorf("wasm2go's %s does not begin with a := uint64(addr)", fd.Name.Name)
		}
		fd.Body.List[0].(*ast.AssignStmt).Rhs[0].(*ast.CallExpr).Fun = ast.NewIdent(addrFunc)
		used = true
	}
	mems := map[string]bool{mem: true}
	astutil.Apply(f, nil, func(c *astutil.Cursor) bool {
		ix, ok := c.Node().(*ast.IndexExpr)
		if !ok || !isField(ix.X, mems) || !isUint64Expr(ix.Index) {
			return true
		}
		ix.Index = &ast.CallExpr{Fun: ast.NewIdent(addrFunc), Args: []ast.Expr{ix.Index}}
		used = true
		return true
	})
	if !used {
		return nil
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == addrFunc {
			return errors.New("wasm2go output already defines " + addrFunc)
		}
	}
	helper, err := parser.ParseFile(fset, "teastick_memory.go", "package p\n"+addrHelper, parser.ParseComments)
	if err != nil {
		return err
	}
	f.Decls = append(f.Decls, helper.Decls...)
	return nil
}

// Linear memory words in one access (RATIONALE.md, "Native actors",
// word accesses). wasm2go's helpers read and write a wider value with
// encoding/binary's little-endian functions. Go's compilers for 64-bit
// hosts turn those into one load or store; its compiler for 32-bit arm
// does not (it cannot assume the processor takes an unaligned word), and
// reads a 64-bit value as eight byte loads joined by shifts: on the
// stick's Cortex-A7 that made load64 and store64 too large to inline, a
// call on every i64 access of a Go guest, which keeps its stack and its
// pointers in 64-bit words. wordAccesses has the helpers call
// teastickLoadN and teastickStoreN instead: on arm one word access each
// (two for 64 bits) through the slice Go's bounds check has just cut,
// which holds exactly the bytes accessed; on every other host the same
// encoding/binary call as before. The stick clears the processor's
// alignment check at boot (board/armv7), so ARMv7-A performs single
// word and halfword accesses at any address in normal memory (ARM
// Architecture Reference Manual ARMv7-A, A3.2.1); Linux runs arm
// programs the same way, as qemu-arm does in the tests.

const wordHelper = `
// teastickWordAccess: this host reads and writes a little-endian word of
// linear memory with one access, at any address, where Go's compiler
// would read it a byte at a time: 32-bit arm, whose alignment check the
// stick clears at boot.
const teastickWordAccess = runtime.GOARCH == "arm"

//go:nosplit
func teastickLoad16(b []byte) uint16 {
	_ = b[1]
	if teastickWordAccess {
		return *(*uint16)(unsafe.Pointer(&b[0]))
	}
	return binary.LittleEndian.Uint16(b)
}

//go:nosplit
func teastickLoad32(b []byte) uint32 {
	_ = b[3]
	if teastickWordAccess {
		return *(*uint32)(unsafe.Pointer(&b[0]))
	}
	return binary.LittleEndian.Uint32(b)
}

//go:nosplit
func teastickLoad64(b []byte) uint64 {
	_ = b[7]
	if teastickWordAccess {
		return *(*uint64)(unsafe.Pointer(&b[0]))
	}
	return binary.LittleEndian.Uint64(b)
}

//go:nosplit
func teastickStore16(b []byte, v uint16) {
	_ = b[1]
	if teastickWordAccess {
		*(*uint16)(unsafe.Pointer(&b[0])) = v
		return
	}
	binary.LittleEndian.PutUint16(b, v)
}

//go:nosplit
func teastickStore32(b []byte, v uint32) {
	_ = b[3]
	if teastickWordAccess {
		*(*uint32)(unsafe.Pointer(&b[0])) = v
		return
	}
	binary.LittleEndian.PutUint32(b, v)
}

//go:nosplit
func teastickStore64(b []byte, v uint64) {
	_ = b[7]
	if teastickWordAccess {
		*(*uint64)(unsafe.Pointer(&b[0])) = v
		return
	}
	binary.LittleEndian.PutUint64(b, v)
}
`

// wordAccesses makes wasm2go's load and store helpers (those a module
// uses: wasm2go writes no others) access linear memory through the
// helpers of wordHelper. Each must call its encoding/binary function
// exactly once; any other shape, or a module already declaring a name
// the word helpers use, is refused.
func wordAccesses(fset *token.FileSet, f *ast.File) error {
	taken := map[string]bool{"teastickWordAccess": true, "runtime": true, "unsafe": true}
	for _, h := range wideHelpers {
		taken[h[1]] = true
	}
	found := 0
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv != nil {
				continue
			}
			if taken[d.Name.Name] {
				return errors.New("wasm2go output already declares " + d.Name.Name)
			}
			h, ok := wideHelpers[d.Name.Name]
			if !ok {
				continue
			}
			var calls []*ast.CallExpr
			ast.Inspect(d.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok && isBinaryLE(c.Fun, h[0]) {
					calls = append(calls, c)
				}
				return true
			})
			if len(calls) != 1 {
				return fmt.Errorf("wasm2go's %s calls binary.LittleEndian.%s %d times, not once", d.Name.Name, h[0], len(calls))
			}
			calls[0].Fun = ast.NewIdent(h[1])
			found++
		case *ast.GenDecl:
			for _, sp := range d.Specs {
				var names []*ast.Ident
				switch sp := sp.(type) {
				case *ast.ValueSpec:
					names = sp.Names
				case *ast.TypeSpec:
					names = []*ast.Ident{sp.Name}
				}
				for _, n := range names {
					if taken[n.Name] {
						return errors.New("wasm2go output already declares " + n.Name)
					}
				}
			}
		}
	}
	if found == 0 {
		return nil
	}
	helper, err := parser.ParseFile(fset, "teastick_words.go", "package p\n"+wordHelper, parser.ParseComments)
	if err != nil {
		return err
	}
	f.Decls = append(f.Decls, helper.Decls...)
	astutil.AddImport(fset, f, "runtime")
	astutil.AddImport(fset, f, "unsafe")
	return nil
}

// isBinaryLE: e is binary.LittleEndian.<name>.
func isBinaryLE(e ast.Expr, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	inner, ok := sel.X.(*ast.SelectorExpr)
	return ok && inner.Sel.Name == "LittleEndian" && isIdent(inner.X, "binary")
}

// isAddrDecl: body begins with `a := uint64(addr)`.
func isAddrDecl(body *ast.BlockStmt) bool {
	if body == nil || len(body.List) == 0 {
		return false
	}
	as, ok := body.List[0].(*ast.AssignStmt)
	if !ok || as.Tok != token.DEFINE || len(as.Lhs) != 1 || len(as.Rhs) != 1 || !isIdent(as.Lhs[0], "a") {
		return false
	}
	call, ok := as.Rhs[0].(*ast.CallExpr)
	return ok && isIdent(call.Fun, "uint64") && len(call.Args) == 1 && isIdent(call.Args[0], "addr")
}

// isUint64Expr: e is a uint64 conversion, or a sum beginning with one
// (wasm2go's base + offset): its type is uint64.
func isUint64Expr(e ast.Expr) bool {
	for {
		switch x := e.(type) {
		case *ast.ParenExpr:
			e = x.X
		case *ast.BinaryExpr:
			if x.Op != token.ADD {
				return false
			}
			e = x.X
		case *ast.CallExpr:
			return isIdent(x.Fun, "uint64") && len(x.Args) == 1
		default:
			return false
		}
	}
}

// memoryCapacity makes New allocate the linear memory with capBytes of
// capacity (RATIONALE.md, "Native actors", memory growth): the room the
// runtime gives every instance (reserveMemory) and the size a snapshot
// restores (runtime/preinit.go), so neither allocates and copies the
// memory again. The capacity is zeroed by make and nothing runs before
// the runtime extends or grows into it. New must assign the memory once,
// as wasm2go v0.4.21 does: `m.memory = make([]byte, N)`.
func memoryCapacity(f *ast.File, mem string, capBytes uint64) error {
	newFn, err := newFunc(f)
	if err != nil {
		return fmt.Errorf("memory capacity: %w", err)
	}
	var makes []*ast.CallExpr
	ast.Inspect(newFn.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 || !isField(as.Lhs[0], map[string]bool{mem: true}) {
			return true
		}
		if call, ok := as.Rhs[0].(*ast.CallExpr); ok && isIdent(call.Fun, "make") && len(call.Args) == 2 {
			makes = append(makes, call)
		} else {
			makes = append(makes, nil)
		}
		return true
	})
	if len(makes) != 1 || makes[0] == nil {
		return fmt.Errorf("memory capacity: New assigns m.%s %d times, not once with make([]byte, n)", mem, len(makes))
	}
	makes[0].Args = append(makes[0].Args, &ast.BasicLit{Kind: token.INT, Value: fmt.Sprintf("%#x", capBytes)})
	return nil
}
