package translate

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/tools/go/ast/astutil"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/native"
)

// Names the rewrite adds to a generated package; wasm2go's own names are
// g0, t0, fn0, v0, l0, X..., _... and its helpers (snake_case).
const (
	depthField = "teastickDepth"
	tableGet   = "teastickTable"
	// memoryField is wasm2go's Module field for the linear memory.
	memoryField = "memory"
)

// rewrite bounds the call depth of the generated module and returns it
// with its registration file (RATIONALE.md, "Native actors", call depth):
// every method of Module (a WebAssembly function, defined or imported)
// counts itself in a field of the instance on entry and uncounts itself
// on each return, and panics with "stack overflow" (wazero's trap) past
// runtime.NativeMaxDepth. call_indirect's table lookup, and the other
// table instructions (tableTraps), trap as wazero's do ("invalid table
// access") instead of with Go's index error. The state-machine loops of
// Go-compiled actors jump directly between their states, each jump still
// paying the meter's check (directDispatch), and their innermost loops
// get a copy that keeps the values they compare in 32 bits while those
// fit (narrowLoops). Memory addresses are
// computed in the host's word (wordAddresses), and wider values read
// and written with one access each where the compiler would not
// (wordAccesses); 64-bit comparisons compare words with branches on a
// 32-bit host (wordCompares).
func rewrite(src []byte, pkg string, nm *runtime.NativeModule) (module, register []byte, err error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "module.go", src, parser.ParseComments)
	if err != nil {
		return nil, nil, fmt.Errorf("parse wasm2go output: %w", err)
	}
	if err := addDepthField(f); err != nil {
		return nil, nil, err
	}
	methods := map[string]*ast.FuncDecl{}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && isModuleRecv(fd.Recv) {
			methods[fd.Name.Name] = fd
		}
	}
	// The registration reads the import wrappers as wasm2go wrote them.
	reg, err := registration(f, methods, pkg, nm)
	if err != nil {
		return nil, nil, err
	}
	yield := yieldMethod(nm.Actor.Imports)
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || !isModuleRecv(fd.Recv) {
			continue
		}
		if returnsMemory(fd) {
			continue
		}
		directDispatch(fset, fd, yield)
		if err := instrument(fd, nm.Actor.MaxDepth); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", fd.Name.Name, err)
		}
	}
	if err := staticElements(f, methods); err != nil {
		return nil, nil, err
	}
	tables := 0
	astutil.Apply(f, nil, func(c *astutil.Cursor) bool {
		ta, ok := c.Node().(*ast.TypeAssertExpr)
		if !ok || ta.Type == nil {
			return true
		}
		if ix, ok := ta.X.(*ast.IndexExpr); ok {
			ta.X = &ast.CallExpr{Fun: ast.NewIdent(tableGet), Args: []ast.Expr{ix.X, ix.Index}}
			tables++
		}
		return true
	})
	if tables > 0 {
		helper, err := parser.ParseFile(token.NewFileSet(), "", "package p\n"+tableHelper, 0)
		if err != nil {
			return nil, nil, err
		}
		f.Decls = append(f.Decls, helper.Decls...)
	}
	if err := tableTraps(fset, f); err != nil {
		return nil, nil, err
	}
	if err := wordAddresses(fset, f, memoryField); err != nil {
		return nil, nil, err
	}
	if err := wordAccesses(fset, f); err != nil {
		return nil, nil, err
	}
	if err := memoryCapacity(f, memoryField, nm.MemoryCap); err != nil {
		return nil, nil, err
	}
	if _, err := wordCompares(fset, f); err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	if err := format.Node(&out, fset, f); err != nil {
		return nil, nil, fmt.Errorf("format: %w", err)
	}
	return out.Bytes(), reg, nil
}

// yieldMethod names wasm2go's method for the meter's yield import
// (runtime/meter.go's teastick:meter.yield), "" if the module has none.
func yieldMethod(imports []native.Import) string {
	for i, im := range imports {
		if im.Module == "teastick:meter" && im.Name == "yield" {
			return fmt.Sprintf("fn%d", i)
		}
	}
	return ""
}

const tableHelper = `
// teastickTable is call_indirect's table lookup, trapping as wazero does.
func teastickTable[T any](t []T, i uint) T {
	if i >= uint(len(t)) {
		panic("invalid table access")
	}
	return t[i]
}
`

func addDepthField(f *ast.File) error {
	st, err := moduleStruct(f)
	if err != nil {
		return err
	}
	st.Fields.List = append(st.Fields.List, &ast.Field{
		Names: []*ast.Ident{ast.NewIdent(depthField)},
		Type:  ast.NewIdent("uint32"),
	})
	return nil
}

// newFunc returns wasm2go's constructor, func New.
func newFunc(f *ast.File) (*ast.FuncDecl, error) {
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "New" {
			return fd, nil
		}
	}
	return nil, errors.New("no New in wasm2go output")
}

// moduleStruct returns wasm2go's `type Module struct`.
func moduleStruct(f *ast.File) (*ast.StructType, error) {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, s := range gd.Specs {
			ts := s.(*ast.TypeSpec)
			if ts.Name.Name != "Module" {
				continue
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return nil, errors.New("Module is not a struct")
			}
			return st, nil
		}
	}
	return nil, errors.New("no type Module in wasm2go output")
}

func isModuleRecv(fl *ast.FieldList) bool {
	if len(fl.List) != 1 {
		return false
	}
	st, ok := fl.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	id, ok := st.X.(*ast.Ident)
	return ok && id.Name == "Module"
}

func returnsMemory(fd *ast.FuncDecl) bool {
	r := fd.Type.Results
	if r == nil || len(r.List) != 1 {
		return false
	}
	id, ok := r.List[0].Type.(*ast.Ident)
	return ok && id.Name == "Memory"
}

// instrument adds the depth count to one method.
func instrument(fd *ast.FuncDecl, maxDepth uint32) error {
	recv := fd.Recv.List[0].Names
	if len(recv) != 1 {
		return errors.New("unnamed receiver")
	}
	m := recv[0].Name
	var results []ast.Expr
	if fd.Type.Results != nil {
		for _, fl := range fd.Type.Results.List {
			if len(fl.Names) > 0 {
				return errors.New("named results")
			}
			results = append(results, fl.Type)
		}
	}
	depth := func() ast.Expr {
		return &ast.SelectorExpr{X: ast.NewIdent(m), Sel: ast.NewIdent(depthField)}
	}
	dec := func() ast.Stmt { return &ast.IncDecStmt{X: depth(), Tok: token.DEC} }
	var bad error
	astutil.Apply(fd.Body, func(c *astutil.Cursor) bool {
		if _, ok := c.Node().(*ast.FuncLit); ok {
			return false // its returns are not the method's
		}
		return true
	}, func(c *astutil.Cursor) bool {
		ret, ok := c.Node().(*ast.ReturnStmt)
		if !ok {
			return true
		}
		c.Replace(returnBlock(ret, results, dec, &bad))
		return true
	})
	if bad != nil {
		return bad
	}
	entry := []ast.Stmt{
		&ast.IncDecStmt{X: depth(), Tok: token.INC},
		&ast.IfStmt{
			Cond: &ast.BinaryExpr{X: depth(), Op: token.GTR, Y: &ast.BasicLit{Kind: token.INT, Value: strconv.FormatUint(uint64(maxDepth), 10)}},
			Body: &ast.BlockStmt{List: []ast.Stmt{&ast.ExprStmt{X: &ast.CallExpr{
				Fun: ast.NewIdent("panic"), Args: []ast.Expr{&ast.BasicLit{Kind: token.STRING, Value: `"stack overflow"`}}}}}},
		},
	}
	body := append(entry, fd.Body.List...)
	if len(results) == 0 {
		body = append(body, dec())
	}
	fd.Body.List = body
	return nil
}

// returnBlock turns `return e...` into `{ r0 := T0(e0)...; depth--;
// return r0... }`: the results are computed (calls included) at the
// method's depth, then it uncounts itself.
func returnBlock(ret *ast.ReturnStmt, results []ast.Expr, dec func() ast.Stmt, bad *error) ast.Stmt {
	if len(ret.Results) == 0 {
		return &ast.BlockStmt{List: []ast.Stmt{dec(), ret}}
	}
	var list []ast.Stmt
	var names []ast.Expr
	for i := range results {
		names = append(names, ast.NewIdent(fmt.Sprintf("r%d_", i)))
	}
	switch {
	case len(ret.Results) == len(results):
		for i, e := range ret.Results {
			list = append(list, &ast.DeclStmt{Decl: &ast.GenDecl{Tok: token.VAR, Specs: []ast.Spec{&ast.ValueSpec{
				Names: []*ast.Ident{names[i].(*ast.Ident)}, Type: results[i], Values: []ast.Expr{e}}}}})
		}
	case len(ret.Results) == 1:
		list = append(list, &ast.AssignStmt{Lhs: names, Tok: token.DEFINE, Rhs: ret.Results})
	default:
		*bad = errors.New("return arity")
	}
	list = append(list, dec(), &ast.ReturnStmt{Results: names})
	return &ast.BlockStmt{List: list}
}

var goTypes = map[byte]string{native.I32: "int32", native.I64: "int64", native.F32: "float32", native.F64: "float64"}

// importMethod finds what wasm2go's wrapper of import i calls:
// `m.<field>.<method>(...)`.
func importMethod(fd *ast.FuncDecl) (field, method string, ok bool) {
	if fd == nil || len(fd.Body.List) != 1 {
		return "", "", false
	}
	var call *ast.CallExpr
	switch s := fd.Body.List[0].(type) {
	case *ast.ReturnStmt:
		if len(s.Results) == 1 {
			call, _ = s.Results[0].(*ast.CallExpr)
		}
	case *ast.ExprStmt:
		call, _ = s.X.(*ast.CallExpr)
	}
	if call == nil {
		return "", "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", "", false
	}
	inner, ok := sel.X.(*ast.SelectorExpr)
	if !ok {
		return "", "", false
	}
	return inner.Sel.Name, sel.Sel.Name, true
}

var newAssign = regexp.MustCompile(`^v([0-9]+)$`)

// registration writes register.go: the adapter from the module's import
// interfaces to native.Host, native.Instance over Module, and the entry
// of package native's table.
func registration(f *ast.File, methods map[string]*ast.FuncDecl, pkg string, nm *runtime.NativeModule) ([]byte, error) {
	a := nm.Actor
	// New's parameters, by the field each is stored in.
	newFn, err := newFunc(f)
	if err != nil {
		return nil, err
	}
	nparams := 0
	for _, p := range newFn.Type.Params.List {
		nparams += len(p.Names)
	}
	fieldParam := map[string]int{}
	for _, s := range newFn.Body.List {
		as, ok := s.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			continue
		}
		sel, ok1 := as.Lhs[0].(*ast.SelectorExpr)
		id, ok2 := as.Rhs[0].(*ast.Ident)
		if !ok1 || !ok2 {
			continue
		}
		if mm := newAssign.FindStringSubmatch(id.Name); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			fieldParam[sel.Sel.Name] = n
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Code generated by teastick's translate (runtime/native/translate). DO NOT EDIT.\n\npackage %s\n\n", pkg)
	b.WriteString("import (\n\t\"math\"\n\n\t\"github.com/ipfs/go-cid\"\n\n\t\"github.com/teastick/teastick/runtime/native\"\n)\n\n")
	b.WriteString("var _ = math.Float32bits\n\n")
	fmt.Fprintf(&b, "func init() {\n\tnative.Register(&native.Actor{\n")
	fmt.Fprintf(&b, "\t\tName: %q,\n\t\tCID: cid.MustParse(%q),\n", a.Name, a.CID.String())
	fmt.Fprintf(&b, "\t\tMemoryPages: %d,\n\t\tMinPages: %d,\n\t\tMaxDepth: %d,\n\t\tMetered: %t,\n", a.MemoryPages, a.MinPages, a.MaxDepth, a.Metered)
	b.WriteString("\t\tImports: []native.Import{\n")
	slots := 1
	for _, im := range a.Imports {
		fmt.Fprintf(&b, "\t\t\t{Module: %q, Name: %q, Params: []byte(%q), Results: []byte(%q)},\n", im.Module, im.Name, string(im.Params), string(im.Results))
		slots = max(slots, len(im.Params), len(im.Results))
	}
	b.WriteString("\t\t},\n\t\tInits: []string{")
	for i, s := range a.Inits {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	b.WriteString("},\n")
	if a.Snapshot != nil {
		b.WriteString("\t\tSnapshot: &snapshot,\n")
	}
	b.WriteString("\t\tNew: newInstance,\n\t})\n}\n\n")
	fmt.Fprintf(&b, "// host is one instance's side of its imports.\ntype host struct {\n\th native.Host\n\ts [%d]uint64\n}\n\n", slots)

	// One adapter type per New parameter (an import module).
	adapters := make([][]string, nparams)
	done := map[string]bool{}
	for i, im := range a.Imports {
		field, method, ok := importMethod(methods[fmt.Sprintf("fn%d", i)])
		if !ok {
			return nil, fmt.Errorf("import %d (%s.%s): no wasm2go wrapper fn%d", i, im.Module, im.Name, i)
		}
		p, ok := fieldParam[field]
		if !ok || p >= nparams {
			return nil, fmt.Errorf("import %d (%s.%s): field %s not set by New", i, im.Module, im.Name, field)
		}
		if done[field+"."+method] {
			continue
		}
		done[field+"."+method] = true
		m, err := adapterMethod(p, method, i, im)
		if err != nil {
			return nil, err
		}
		adapters[p] = append(adapters[p], m)
	}
	var args []string
	for p := range nparams {
		fmt.Fprintf(&b, "type imp%d struct{ *host }\n\n", p)
		for _, m := range adapters[p] {
			b.WriteString(m)
		}
		args = append(args, fmt.Sprintf("imp%d{x}", p))
	}
	b.WriteString("// instance is native.Instance over Module.\ntype instance struct{ m *Module }\n\n")
	fmt.Fprintf(&b, "func newInstance(h native.Host) native.Instance {\n\tx := &host{h: h}\n\treturn instance{New(%s)}\n}\n\n", strings.Join(args, ", "))
	for _, name := range []string{"Xmemory", "X__guest_call"} {
		if methods[name] == nil {
			return nil, fmt.Errorf("no method %s in wasm2go output", name)
		}
	}
	b.WriteString("func (i instance) Memory() *[]byte { return i.m.Xmemory().Slice() }\n\n")
	b.WriteString("func (i instance) GuestCall(op, n int32) int32 { return i.m.X__guest_call(op, n) }\n\n")
	b.WriteString("func (i instance) Init(name string) {\n\tswitch name {\n")
	for _, s := range a.Inits {
		meth := "X" + s
		if methods[meth] == nil {
			return nil, fmt.Errorf("no method %s in wasm2go output", meth)
		}
		fmt.Fprintf(&b, "\tcase %q:\n\t\ti.m.%s()\n", s, meth)
	}
	b.WriteString("\tdefault:\n\t\tpanic(\"native: no initializer \" + name)\n\t}\n}\n")
	if err := snapshotCode(&b, f, a.Snapshot); err != nil {
		return nil, err
	}
	out, err := format.Source([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("format register.go: %w\n%s", err, b.String())
	}
	return out, nil
}

// adapterMethod writes the method of adapter imp<p> for import i.
func adapterMethod(p int, method string, i int, im native.Import) (string, error) {
	var params, body []string
	for k, t := range im.Params {
		gt, ok := goTypes[t]
		if !ok {
			return "", fmt.Errorf("import %s.%s: value type %#x", im.Module, im.Name, t)
		}
		params = append(params, fmt.Sprintf("v%d %s", k, gt))
		body = append(body, fmt.Sprintf("\ta.s[%d] = %s\n", k, toSlot(t, fmt.Sprintf("v%d", k))))
	}
	var results, rets []string
	for k, t := range im.Results {
		gt, ok := goTypes[t]
		if !ok {
			return "", fmt.Errorf("import %s.%s: value type %#x", im.Module, im.Name, t)
		}
		results = append(results, gt)
		rets = append(rets, fromSlot(t, fmt.Sprintf("a.s[%d]", k)))
	}
	res := strings.Join(results, ", ")
	if len(results) > 1 {
		res = "(" + res + ")"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "func (a imp%d) %s(%s) %s {\n", p, method, strings.Join(params, ", "), res)
	s.WriteString(strings.Join(body, ""))
	fmt.Fprintf(&s, "\ta.h.Call(%d, a.s[:])\n", i)
	if len(rets) > 0 {
		fmt.Fprintf(&s, "\treturn %s\n", strings.Join(rets, ", "))
	}
	s.WriteString("}\n\n")
	return s.String(), nil
}

// toSlot and fromSlot convert as wazero's api.EncodeXxx and DecodeXxx.
func toSlot(t byte, v string) string {
	switch t {
	case native.I32:
		return "uint64(uint32(" + v + "))"
	case native.I64:
		return "uint64(" + v + ")"
	case native.F32:
		return "uint64(math.Float32bits(" + v + "))"
	}
	return "math.Float64bits(" + v + ")"
}

func fromSlot(t byte, v string) string {
	switch t {
	case native.I32:
		return "int32(uint32(" + v + "))"
	case native.I64:
		return "int64(" + v + ")"
	case native.F32:
		return "math.Float32frombits(uint32(" + v + "))"
	}
	return "math.Float64frombits(" + v + ")"
}

// rootPackage writes outDir/actors.go, importing every actor package.
func rootPackage(importPath string, imports []string) ([]byte, error) {
	name := importPath[strings.LastIndex(importPath, "/")+1:]
	name = strings.TrimLeft(strings.NewReplacer("-", "_", ".", "_").Replace(name), "_")
	if name == "" {
		name = "actors"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Code generated by teastick's translate (runtime/native/translate). DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "// Package %s links the translated actors into package native's table.\npackage %s\n\n", name, name)
	if len(imports) > 0 {
		b.WriteString("import (\n")
		for _, p := range imports {
			fmt.Fprintf(&b, "\t_ %q\n", p)
		}
		b.WriteString(")\n")
	}
	return format.Source([]byte(b.String()))
}

// staticElements makes a module's function tables cheap to instantiate
// (RATIONALE.md, "Native actors", cold start). wasm2go fills them in New
// with method values, m.fnN: one closure allocated per entry and
// instance (5,876 for the echo example, with a New of as many lines that
// runs per instance). When the module uses its functions as values only
// there, and calls table entries only through call_indirect, the
// entries become method expressions, (*Module).fnN, in package-level
// slices built once, and each call_indirect asserts the method
// expression's type and passes the instance: the same function runs on
// the same instance, a null entry or another signature traps as before
// (the asserted type differs exactly when the WebAssembly signature
// does). Anything else is left as wasm2go wrote it.
func staticElements(f *ast.File, methods map[string]*ast.FuncDecl) error {
	newFn, err := newFunc(f)
	if err != nil {
		return err
	}
	// New's `m.elements = [][]any{{m.fnA, ...}, nil, ...}`.
	var assign *ast.AssignStmt
	var segs *ast.CompositeLit
	for _, st := range newFn.Body.List {
		as, ok := st.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			continue
		}
		if sel, ok := as.Lhs[0].(*ast.SelectorExpr); ok && sel.Sel.Name == "elements" {
			assign = as
			segs, _ = as.Rhs[0].(*ast.CompositeLit)
		}
	}
	if assign == nil || segs == nil {
		return nil // no element segments
	}
	inSegs := map[ast.Node]bool{}
	for _, e := range segs.Elts {
		if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
			continue
		}
		seg, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil
		}
		for _, x := range seg.Elts {
			if id, ok := x.(*ast.Ident); ok && id.Name == "nil" {
				continue
			}
			if !isMethodValue(x, methods) {
				return nil
			}
			inSegs[x] = true
		}
	}
	// Every other use of a method as a value (ref.func) or of a table
	// entry's function type (call_indirect is the only function-typed
	// assertion wasm2go writes) must be one this pass rewrites.
	funOf := map[ast.Expr]*ast.CallExpr{}
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			funOf[c.Fun] = c
		}
		return true
	})
	calls := map[*ast.CallExpr]*ast.TypeAssertExpr{}
	fail := false
	ast.Inspect(f, func(n ast.Node) bool {
		if fail || inSegs[n] {
			return false
		}
		switch x := n.(type) {
		case *ast.TypeAssertExpr:
			if _, ok := x.Type.(*ast.FuncType); ok {
				c := funOf[x]
				if c == nil {
					fail = true
				} else {
					calls[c] = x
				}
			}
		case *ast.SelectorExpr:
			if isMethodValue(x, methods) && funOf[x] == nil {
				fail = true
			}
		}
		return !fail
	})
	if fail {
		return nil
	}
	// Method expressions in package-level segments, built once.
	var vars []ast.Spec
	for i, e := range segs.Elts {
		seg, ok := e.(*ast.CompositeLit)
		if !ok {
			continue
		}
		for j, x := range seg.Elts {
			if sel, ok := x.(*ast.SelectorExpr); ok {
				seg.Elts[j] = &ast.SelectorExpr{X: &ast.ParenExpr{X: &ast.StarExpr{X: ast.NewIdent("Module")}}, Sel: ast.NewIdent(sel.Sel.Name)}
			}
		}
		name := fmt.Sprintf("teastickElements%d", i)
		vars = append(vars, &ast.ValueSpec{Names: []*ast.Ident{ast.NewIdent(name)}, Values: []ast.Expr{&ast.CompositeLit{
			Type: &ast.ArrayType{Elt: ast.NewIdent("any")}, Elts: seg.Elts}}})
		segs.Elts[i] = ast.NewIdent(name)
	}
	if len(vars) > 0 {
		f.Decls = append(f.Decls, &ast.GenDecl{Tok: token.VAR, Lparen: 1, Specs: vars})
	}
	// call_indirect: assert the method expression's type, pass the
	// instance. Inside New or a method of Module the instance is m (the
	// receiver's name in wasm2go's output).
	for call, ta := range calls {
		ft := ta.Type.(*ast.FuncType)
		params := []*ast.Field{{Type: &ast.StarExpr{X: ast.NewIdent("Module")}}}
		if ft.Params != nil {
			for _, p := range ft.Params.List {
				if len(p.Names) > 0 {
					return errors.New("call_indirect with named parameters")
				}
				params = append(params, p)
			}
		}
		ta.Type = &ast.FuncType{Params: &ast.FieldList{List: params}, Results: ft.Results}
		call.Args = append([]ast.Expr{ast.NewIdent("m")}, call.Args...)
	}
	return nil
}

// isMethodValue reports whether n is m.M for a method M of Module (a
// function, fnN, or an export's wrapper, Xname).
func isMethodValue(n ast.Node, methods map[string]*ast.FuncDecl) bool {
	sel, ok := n.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok || id.Name != "m" {
		return false
	}
	_, ok = methods[sel.Sel.Name]
	return ok
}

// globalField is wasm2go's Module field for global n.
var globalField = regexp.MustCompile(`^g([0-9]+)$`)

// setGlobal converts SetGlobal's value to each Go type of a field g<n>.
var setGlobal = map[string]string{
	"int32":   "int32(v)",
	"int64":   "int64(v)",
	"float32": "math.Float32frombits(uint32(v))",
	"float64": "math.Float64frombits(v)",
}

// snapshotCode writes native.Instance's SetGlobal over the fields of s's
// globals, and s as the variable snapshot (the package's data: nothing
// runs to make it).
func snapshotCode(b *strings.Builder, f *ast.File, s *native.Snapshot) error {
	b.WriteString("\nfunc (i instance) SetGlobal(index uint32, v uint64) {\n\tswitch index {\n")
	if s != nil {
		st, err := moduleStruct(f)
		if err != nil {
			return err
		}
		fields := map[string]string{}
		for _, fl := range st.Fields.List {
			for _, n := range fl.Names {
				if id, ok := fl.Type.(*ast.Ident); ok && globalField.MatchString(n.Name) {
					fields[n.Name] = id.Name
				}
			}
		}
		for _, g := range s.Globals {
			name := fmt.Sprintf("g%d", g.Index)
			conv, ok := setGlobal[fields[name]]
			if !ok {
				return fmt.Errorf("snapshot: global %d: no Module field %s of type int32, int64, float32 or float64", g.Index, name)
			}
			fmt.Fprintf(b, "\tcase %d:\n\t\ti.m.%s = %s\n", g.Index, name, conv)
		}
	}
	b.WriteString("\tdefault:\n\t\tpanic(\"native: no global to set\")\n\t}\n}\n")
	if s == nil {
		return nil
	}
	b.WriteString("\n// snapshot is an instance after its initializers ran at release time.\n")
	fmt.Fprintf(b, "var snapshot = native.Snapshot{\n\tPages: %d,\n\tClock: %d,\n\tDenied: %#v,\n\tGlobals: []native.Global{\n", s.Pages, s.Clock, s.Denied)
	for _, g := range s.Globals {
		fmt.Fprintf(b, "\t\t{Index: %d, Value: %#x},\n", g.Index, g.Value)
	}
	b.WriteString("\t},\n\tRuns: []native.Run{\n")
	for _, r := range s.Runs {
		fmt.Fprintf(b, "\t\t{Off: %#x, Data: %s},\n", r.Off, strconv.Quote(r.Data))
	}
	b.WriteString("\t},\n}\n")
	return nil
}
