package translate

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/token"
	"regexp"
	"strconv"

	"golang.org/x/tools/go/ast/astutil"
)

// Go's WebAssembly backend compiles every Go function into a resumable
// state machine, a loop around a br_table on a local (the resume point),
// and wasm2go writes it as
//
//	lH:
//		{
//			tA := m.gF                     // the meter's check (runtime/meter.go)
//			m.gF = tA - i32(C)
//			{
//				tB := m.gF
//				if int32(bits.LeadingZeros32(uint32(tB))) != 0 { goto lM }
//				tC := m.fnY()              // the meter's yield import
//				m.gF = tC
//			}
//		lM:
//			{ { {
//				switch v0 {
//				case K: ...; v0 = i32(J); goto lH   // every state transition
//				...
//
// (or `lM: switch v0 {` with no blocks between, when wasm2go unnested
// them)
// so that every transition pays the check, then the switch: a binary
// search on 32-bit ARM, where Go has no jump tables. directDispatch
// flattens the switch and makes each constant transition a direct jump
// that still pays the same check (RATIONALE.md, "Native actors",
// direct dispatch):
//
//	switch v0 { case K: goto tsK; ...; default: goto tsDefault }  // entry, non-constant jumps
//	tsK: { body of case K }          // a fallthrough runs into the next block
//	...                              // other cases end with goto tsEnd
//	tsEnd:
//
// and `v0 = i32(J); goto lH` in those bodies becomes `v0 = i32(J);
// { copy of the check, its goto lM now goto tsJ }; goto tsJ`. Anything that
// does not match exactly is left as wasm2go wrote it.

const (
	caseLabel    = "ts"
	defaultLabel = "tsDefault"
	endLabel     = "tsEnd"
)

// meterCheck is the check's text as format.Node prints its three
// statements; the groups are tA, the fuel global, the cost, tB, lM, tC
// and the function called for yield.
var meterCheck = regexp.MustCompile(`^(t[0-9]+) := m\.(g[0-9]+)\n` +
	`m\.(g[0-9]+) = (t[0-9]+) - i32\(([0-9]+)\)\n` +
	`\{\n` +
	`\t(t[0-9]+) := m\.(g[0-9]+)\n` +
	`\tif int32\(bits\.LeadingZeros32\(uint32\((t[0-9]+)\)\)\) != 0 \{\n` +
	`\t\tgoto (l[0-9]+)\n` +
	`\t\}\n` +
	`\t(t[0-9]+) := m\.(fn[0-9]+)\(\)\n` +
	`\tm\.(g[0-9]+) = (t[0-9]+)\n` +
	`\}$`)

// meter is one matched check.
type meter struct {
	a, fuel, cost, b, label, c, yield string
}

// matchMeter reports whether stmts are exactly the meter's check, calling
// yield (wasm2go's method for the meter's import), in a method whose
// receiver is m.
func matchMeter(fset *token.FileSet, stmts []ast.Stmt, yield string) (meter, bool) {
	if len(stmts) != 3 {
		return meter{}, false
	}
	var buf bytes.Buffer
	for i, s := range stmts {
		if i > 0 {
			buf.WriteByte('\n')
		}
		if err := format.Node(&buf, fset, s); err != nil {
			return meter{}, false
		}
	}
	g := meterCheck.FindStringSubmatch(buf.String())
	if g == nil {
		return meter{}, false
	}
	mt := meter{a: g[1], fuel: g[2], cost: g[5], b: g[6], label: g[9], c: g[10], yield: g[11]}
	same := g[3] == mt.fuel && g[4] == mt.a && g[7] == mt.fuel && g[8] == mt.b &&
		g[12] == mt.fuel && g[13] == mt.c && mt.yield == yield
	return mt, same
}

// check builds a copy of the check whose skip jumps to target.
func (mt meter) check(target string) ast.Stmt {
	id := ast.NewIdent
	fuel := func() ast.Expr { return &ast.SelectorExpr{X: id("m"), Sel: id(mt.fuel)} }
	call := func(fn string, arg ast.Expr) ast.Expr { return &ast.CallExpr{Fun: id(fn), Args: []ast.Expr{arg}} }
	clz := &ast.CallExpr{Fun: &ast.SelectorExpr{X: id("bits"), Sel: id("LeadingZeros32")}, Args: []ast.Expr{call("uint32", id(mt.b))}}
	return &ast.BlockStmt{List: []ast.Stmt{
		&ast.AssignStmt{Lhs: []ast.Expr{id(mt.a)}, Tok: token.DEFINE, Rhs: []ast.Expr{fuel()}},
		&ast.AssignStmt{Lhs: []ast.Expr{fuel()}, Tok: token.ASSIGN, Rhs: []ast.Expr{&ast.BinaryExpr{
			X: id(mt.a), Op: token.SUB, Y: call("i32", &ast.BasicLit{Kind: token.INT, Value: mt.cost})}}},
		&ast.BlockStmt{List: []ast.Stmt{
			&ast.AssignStmt{Lhs: []ast.Expr{id(mt.b)}, Tok: token.DEFINE, Rhs: []ast.Expr{fuel()}},
			&ast.IfStmt{
				Cond: &ast.BinaryExpr{X: call("int32", clz), Op: token.NEQ, Y: &ast.BasicLit{Kind: token.INT, Value: "0"}},
				Body: &ast.BlockStmt{List: []ast.Stmt{gotoStmt(target)}},
			},
			&ast.AssignStmt{Lhs: []ast.Expr{id(mt.c)}, Tok: token.DEFINE, Rhs: []ast.Expr{&ast.CallExpr{
				Fun: &ast.SelectorExpr{X: id("m"), Sel: id(mt.yield)}}}},
			&ast.AssignStmt{Lhs: []ast.Expr{fuel()}, Tok: token.ASSIGN, Rhs: []ast.Expr{id(mt.c)}},
		}},
	}}
}

func gotoStmt(label string) *ast.BranchStmt {
	return &ast.BranchStmt{Tok: token.GOTO, Label: ast.NewIdent(label)}
}

// directDispatch rewrites the state-machine loops of fd as described
// above and returns how many jumps it made direct. yield is the name of
// wasm2go's method for the meter's import ("" if the module has none:
// nothing then matches).
func directDispatch(fset *token.FileSet, fd *ast.FuncDecl, yield string) int {
	if yield == "" || fd.Body == nil || fd.Recv == nil || len(fd.Recv.List) != 1 ||
		len(fd.Recv.List[0].Names) != 1 || fd.Recv.List[0].Names[0].Name != "m" {
		return 0
	}
	var loops []*ast.LabeledStmt
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if ls, ok := n.(*ast.LabeledStmt); ok {
			loops = append(loops, ls)
		}
		return true
	})
	total := 0
	for _, ls := range loops {
		total += directLoop(fset, fd, ls, yield)
	}
	return total
}

// directLoop rewrites one loop, headed by ls, if it matches.
func directLoop(fset *token.FileSet, fd *ast.FuncDecl, ls *ast.LabeledStmt, yield string) int {
	loop, ok := ls.Stmt.(*ast.BlockStmt)
	if !ok || len(loop.List) < 4 {
		return 0
	}
	mt, ok := matchMeter(fset, loop.List[:3], yield)
	if !ok {
		return 0
	}
	after, ok := loop.List[3].(*ast.LabeledStmt)
	if !ok || after.Label.Name != mt.label {
		return 0
	}
	// The switch, labeled itself or at the end of a chain of blocks, each
	// the first statement of the one before.
	host, at := loop, 3 // the statement list holding the switch, and where
	sw, ok := after.Stmt.(*ast.SwitchStmt)
	for s := after.Stmt; !ok; {
		b, isBlock := s.(*ast.BlockStmt)
		if !isBlock || len(b.List) == 0 {
			return 0
		}
		host, at = b, 0
		s = b.List[0]
		sw, ok = s.(*ast.SwitchStmt)
	}
	tag, ok := sw.Tag.(*ast.Ident)
	if !ok || sw.Init != nil {
		return 0
	}
	labels := map[string]bool{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if l, ok := n.(*ast.LabeledStmt); ok {
			labels[l.Label.Name] = true
		}
		return true
	})
	if labels[defaultLabel] || labels[endLabel] {
		return 0
	}
	// The cases: integer constants, each once; bodies that neither break
	// out of the switch nor continue, and declare no variable named as
	// the tag (the jumps below set the tag the switch reads).
	type clause struct {
		cc    *ast.CaseClause
		label string
	}
	var clauses []clause
	target := map[int64]string{}
	def := ""
	for _, s := range sw.Body.List {
		cc := s.(*ast.CaseClause)
		if breaksOrContinues(cc.Body) || declares(cc, tag.Name) {
			return 0
		}
		label := defaultLabel
		if cc.List != nil {
			for i, e := range cc.List {
				k, ok := intLit(e)
				if !ok {
					return 0
				}
				if _, dup := target[k]; dup {
					return 0
				}
				if i == 0 {
					label = caseLabel + strconv.FormatInt(k, 10)
				}
				target[k] = label
			}
		} else {
			def = label
		}
		if labels[label] {
			return 0
		}
		labels[label] = true
		clauses = append(clauses, clause{cc, label})
	}
	if len(clauses) == 0 {
		return 0
	}
	// The flat form, built beside the switch (the case bodies' lists are
	// copied; nothing is changed unless a jump is made direct).
	dispatch := &ast.SwitchStmt{Tag: tag, Body: &ast.BlockStmt{}}
	flat := []ast.Stmt{dispatch}
	useEnd := def == ""
	if useEnd {
		flat = append(flat, gotoStmt(endLabel)) // no case taken: past the switch, as before
	}
	var blocks []*ast.BlockStmt
	for i, c := range clauses {
		dispatch.Body.List = append(dispatch.Body.List, &ast.CaseClause{List: c.cc.List, Body: []ast.Stmt{gotoStmt(c.label)}})
		body := append([]ast.Stmt(nil), c.cc.Body...)
		last := i == len(clauses)-1
		switch {
		case len(body) > 0 && isFallthrough(body[len(body)-1]):
			body = body[:len(body)-1]
		case !last && (len(body) == 0 || mayComplete(body[len(body)-1])):
			body = append(body, gotoStmt(endLabel))
			useEnd = true
		}
		blk := &ast.BlockStmt{Lbrace: c.cc.Colon, List: body} // Lbrace: gofmt adds no blank line
		blocks = append(blocks, blk)
		flat = append(flat, &ast.LabeledStmt{Label: ast.NewIdent(c.label), Stmt: blk})
	}
	if useEnd {
		flat = append(flat, &ast.LabeledStmt{Label: ast.NewIdent(endLabel), Stmt: &ast.EmptyStmt{Implicit: true}})
	}
	// The jumps, only inside the former case bodies (from anywhere else a
	// jump into these blocks is not Go).
	type site struct {
		list  *[]ast.Stmt
		index int
		to    string
	}
	var sites []site
	for _, blk := range blocks {
		forLists(blk, func(list *[]ast.Stmt) {
			for i := 1; i < len(*list); i++ {
				br, ok := (*list)[i].(*ast.BranchStmt)
				if !ok || br.Tok != token.GOTO || br.Label == nil || br.Label.Name != ls.Label.Name {
					continue
				}
				k, ok := setsConst((*list)[i-1], tag.Name)
				if !ok {
					continue
				}
				to, ok := target[k]
				if !ok {
					to = def
				}
				if to != "" {
					sites = append(sites, site{list, i, to})
				}
			}
		})
	}
	if len(sites) == 0 {
		return 0
	}
	// Last site first, so that earlier indexes in the same list hold.
	for j := len(sites) - 1; j >= 0; j-- {
		s := sites[j]
		l := *s.list
		repl := []ast.Stmt{mt.check(s.to), gotoStmt(s.to)}
		*s.list = append(l[:s.index:s.index], append(repl, l[s.index+1:]...)...)
	}
	if at == 3 {
		flat[0] = &ast.LabeledStmt{Label: after.Label, Stmt: dispatch}
	}
	host.List = append(append(host.List[:at:at], flat...), host.List[at+1:]...)
	narrowLoops(fd, host, at, at+len(flat))
	// Every jump to the loop's label may have been made direct: Go
	// refuses a label nobody uses.
	if countGotos(fd.Body, ls.Label.Name) == 0 {
		astutil.Apply(fd.Body, nil, func(c *astutil.Cursor) bool {
			if c.Node() == ls {
				c.Replace(ls.Stmt)
			}
			return true
		})
	}
	return len(sites)
}

// forLists calls fn on every statement list in n (blocks and case
// clauses).
func forLists(n ast.Node, fn func(*[]ast.Stmt)) {
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BlockStmt:
			fn(&n.List)
		case *ast.CaseClause:
			fn(&n.Body)
		case *ast.CommClause:
			fn(&n.Body)
		case *ast.FuncLit:
			return false
		}
		return true
	})
}

// countGotos counts the branch statements naming label in n.
func countGotos(n ast.Node, label string) int {
	c := 0
	ast.Inspect(n, func(n ast.Node) bool {
		if br, ok := n.(*ast.BranchStmt); ok && br.Label != nil && br.Label.Name == label {
			c++
		}
		return true
	})
	return c
}

// setsConst matches `tag = i32(K)` and returns K.
func setsConst(s ast.Stmt, tag string) (int64, bool) {
	as, ok := s.(*ast.AssignStmt)
	if !ok || as.Tok != token.ASSIGN || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
		return 0, false
	}
	if id, ok := as.Lhs[0].(*ast.Ident); !ok || id.Name != tag {
		return 0, false
	}
	call, ok := as.Rhs[0].(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return 0, false
	}
	if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "i32" {
		return 0, false
	}
	k, ok := intLit(call.Args[0])
	if !ok || k != int64(int32(k)) {
		return 0, false
	}
	return k, true
}

// intLit reads an integer literal, or a negated one.
func intLit(e ast.Expr) (int64, bool) {
	neg := false
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.SUB {
		neg, e = true, u.X
	}
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.INT {
		return 0, false
	}
	k, err := strconv.ParseInt(bl.Value, 0, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		k = -k
	}
	return k, true
}

func isFallthrough(s ast.Stmt) bool {
	br, ok := s.(*ast.BranchStmt)
	return ok && br.Tok == token.FALLTHROUGH
}

// mayComplete reports whether control may flow past s; true when unsure
// (a goto then added after s is unreachable but harmless).
func mayComplete(s ast.Stmt) bool {
	switch s := s.(type) {
	case *ast.ReturnStmt:
		return false
	case *ast.BranchStmt:
		return false // goto (break, continue and fallthrough are handled before)
	case *ast.LabeledStmt:
		return mayComplete(s.Stmt)
	case *ast.BlockStmt:
		return len(s.List) == 0 || mayComplete(s.List[len(s.List)-1])
	case *ast.IfStmt:
		return s.Else == nil || mayComplete(s.Body) || mayComplete(s.Else)
	case *ast.ExprStmt:
		call, ok := s.X.(*ast.CallExpr)
		if !ok {
			return true
		}
		id, ok := call.Fun.(*ast.Ident)
		return !ok || id.Name != "panic"
	}
	return true
}

// breaksOrContinues reports whether stmts hold a break or a continue
// anywhere: wasm2go writes none (it has no for loops), so none is
// understood here.
func breaksOrContinues(stmts []ast.Stmt) bool {
	found := false
	for _, s := range stmts {
		ast.Inspect(s, func(n ast.Node) bool {
			if br, ok := n.(*ast.BranchStmt); ok && (br.Tok == token.BREAK || br.Tok == token.CONTINUE) {
				found = true
			}
			return !found
		})
	}
	return found
}

// declares reports whether n declares a variable named name.
func declares(n ast.Node, name string) bool {
	found := false
	ast.Inspect(n, func(m ast.Node) bool {
		switch m := m.(type) {
		case *ast.AssignStmt:
			if m.Tok == token.DEFINE {
				for _, e := range m.Lhs {
					if id, ok := e.(*ast.Ident); ok && id.Name == name {
						found = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range m.Names {
				if id.Name == name {
					found = true
				}
			}
		case *ast.FuncLit:
			return false
		}
		return !found
	})
	return found
}
