package translate

import (
	"fmt"
	"go/ast"
	"go/token"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/tools/go/ast/astutil"
)

// 32-bit versions of inner loops (RATIONALE.md, "Native actors", loops
// in 32 bits). Go compiled to WebAssembly keeps its ints, lengths and
// indexes in i64 locals, so the translated inner loop of a Go guest
// holds every index, bound and length as a 64-bit value. On the Mk II's
// 32-bit core each is a pair of registers, and a loop that native Go
// runs from registers spills to the stack, where under QEMU every access
// is a lookup in the emulated MMU.
//
// narrowLoops gives each innermost loop of a state machine that
// directDispatch flattened a second copy, run while the values fit:
//
//   - The loop's states are the ts blocks of a strongly connected part
//     of the jumps between them that holds no smaller one once the
//     states it is entered at are removed.
//   - Its narrowed variables are the function's int64 locals whose high
//     word the loop reads: compared, shifted right, passed or stored
//     whole, or assigned to one that is (a local only ever truncated,
//     added or multiplied keeps its pair: Go already drops the high word
//     it never reads).
//   - Each has an int32 shadow. Every state where control enters the
//     loop (the resume switch aside) begins with a guard: on a 32-bit
//     host, when the narrowed locals live there equal their int32
//     truncations, it copies them into the shadows and jumps to the
//     state's copy.
//   - In the copies every read of a narrowed local reads its shadow,
//     sign-extended (exactly its value), and a comparison of two such
//     compares the shadows; every assignment computes the value as
//     before, in 64 bits, and when it does not fit 32 bits writes every
//     shadow back, stores the value and jumps to the rest of the
//     original state (split off after each such assignment), leaving
//     the copies for this call of the function.
//   - A jump out of the copies goes through a stub, one per target,
//     that writes the shadows back.
//
// So the copies compute every value the original does, from the same
// values, and the original runs whenever one does not fit. Nothing else
// reads the locals (a local is no callee's), and a shadow not live at a
// guard is not read before it is assigned. Only loops of simple shape
// are copied: states without labels of their own or function literals,
// every narrowed local assigned only by a statement of a state's own
// list whose rest uses nothing declared before it, and small enough
// that the copies stay small and the function below the size at which
// Go's inliner stops inlining the memory helpers in it.

// Limits on what is copied: the copies add about twice a loop's code.
const (
	narrowMaxStates = 8
	narrowMaxNodes  = 1500 // AST nodes across a loop's states
	// narrowMaxFuncNodes bounds a function with its copies, in go/ast
	// nodes: past 5,000 of its own IR nodes Go's inliner treats a
	// function as big and inlines only the smallest calls in it. In the
	// kernel actor (go build -gcflags=-m=2) the smallest big function
	// had 10,856 go/ast nodes, and none below it was big.
	narrowMaxFuncNodes = 10000
)

// countNodes counts the go/ast nodes of n.
func countNodes(n ast.Node) int {
	c := 0
	ast.Inspect(n, func(ast.Node) bool { c++; return true })
	return c
}

type nState struct {
	label string
	blk   *ast.BlockStmt
	pos   int    // index in the host list
	next  string // the label control falls through to, "" if none
	ok    bool
	succ  []*nState
	preds int // jumps from outside the state (the dispatch aside)
}

// narrowLoops versions the innermost loops among the states
// host.List[lo:hi] (directDispatch's flat form, the dispatch switch at
// lo) and returns how many it versioned.
func narrowLoops(fd *ast.FuncDecl, host *ast.BlockStmt, lo, hi int) int {
	vars := i64Locals(fd)
	if len(vars) == 0 {
		return 0
	}
	addressed := map[string]bool{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if u, ok := n.(*ast.UnaryExpr); ok && u.Op == token.AND {
			if id, ok := u.X.(*ast.Ident); ok {
				addressed[id.Name] = true
			}
		}
		return true
	})
	var states []*nState
	byLabel := map[string]*nState{}
	for i := lo; i < hi; i++ {
		ls, ok := host.List[i].(*ast.LabeledStmt)
		if !ok {
			continue
		}
		if blk, ok := ls.Stmt.(*ast.BlockStmt); ok && ls.Label.Name != endLabel {
			s := &nState{label: ls.Label.Name, blk: blk, pos: i, ok: true}
			states = append(states, s)
			byLabel[s.label] = s
		}
	}
	for _, s := range states {
		if len(s.blk.List) == 0 || mayComplete(s.blk.List[len(s.blk.List)-1]) {
			if s.pos+1 < len(host.List) {
				if ls, ok := host.List[s.pos+1].(*ast.LabeledStmt); ok {
					s.next = ls.Label.Name
				}
			}
			if s.next == "" {
				s.ok = false
			}
		}
		ast.Inspect(s.blk, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.LabeledStmt, *ast.FuncLit, *ast.DeferStmt, *ast.GoStmt, *ast.RangeStmt, *ast.ForStmt:
				s.ok = false
			case *ast.BranchStmt:
				if n.Tok != token.GOTO {
					s.ok = false
				} else if t, ok := byLabel[n.Label.Name]; ok {
					s.succ = append(s.succ, t)
					t.preds++
				}
			}
			return s.ok
		})
		if t, ok := byLabel[s.next]; ok {
			s.succ = append(s.succ, t)
			t.preds++
		}
	}
	set := map[*nState]bool{}
	for _, s := range states {
		if s.ok {
			set[s] = true
		}
	}
	var loops []nLoop
	innermostLoops(set, 0, &loops)
	// Deeper loops first, while the function has room for copies: they
	// run the most times.
	slices.SortStableFunc(loops, func(a, b nLoop) int { return b.depth - a.depth })
	var insert []ast.Stmt
	var decls []string
	expand := map[ast.Stmt][]ast.Stmt{}
	before := countNodes(fd)
	n, added := 0, 0
	for _, l := range loops {
		L := l.states
		ins, dec, exp, ok := versionLoop(L, vars, addressed, fmt.Sprintf("teastickN%d", countNarrowed(fd)+n))
		if !ok {
			continue
		}
		grown := 0
		for _, st := range ins {
			grown += countNodes(st)
		}
		for _, s := range L {
			for _, st := range exp[s] {
				if st != s.blk {
					grown += countNodes(st)
				}
			}
		}
		if before+added+grown > narrowMaxFuncNodes {
			// Undo the splits: the copies would make the function one
			// that Go's inliner treats as big, and the memory helpers of
			// every access would become calls.
			for _, s := range L {
				for _, st := range exp[s] {
					if ls, ok := st.(*ast.LabeledStmt); ok {
						s.blk.List = append(s.blk.List, ls.Stmt.(*ast.BlockStmt).List...)
					}
				}
			}
			continue
		}
		added += grown
		insert = append(insert, ins...)
		decls = append(decls, dec...)
		for _, s := range L {
			expand[host.List[s.pos]] = exp[s]
		}
		n++
	}
	if n == 0 {
		return 0
	}
	// The copies go right after the dispatch, which never completes: it
	// jumps in every case, or is followed by a jump to tsEnd.
	at := lo + 1
	if br, ok := host.List[at].(*ast.BranchStmt); ok && br.Tok == token.GOTO {
		at++
	}
	var list []ast.Stmt
	for i, st := range host.List {
		if i == at {
			list = append(list, insert...)
		}
		exp, ok := expand[st]
		if !ok {
			list = append(list, st)
			continue
		}
		ls := st.(*ast.LabeledStmt)
		ls.Stmt = exp[0]
		list = append(list, ls)
		list = append(list, exp[1:]...)
	}
	host.List = list
	spec := &ast.GenDecl{Tok: token.VAR}
	for i := 0; i < len(decls); i += 2 {
		spec.Specs = append(spec.Specs, &ast.ValueSpec{Names: []*ast.Ident{ast.NewIdent(decls[i])}, Type: ast.NewIdent(decls[i+1])})
	}
	decl := &ast.DeclStmt{Decl: spec}
	fillPos(decl, fd.Body.Lbrace)
	fd.Body.List = append([]ast.Stmt{decl}, fd.Body.List...)
	return n
}

// countNarrowed counts the loops of fd already versioned (names stay
// unique when a function has several state machines).
func countNarrowed(fd *ast.FuncDecl) int {
	n := 0
	ast.Inspect(fd.Body, func(x ast.Node) bool {
		if vs, ok := x.(*ast.ValueSpec); ok {
			for _, id := range vs.Names {
				if strings.HasPrefix(id.Name, "teastickN") && strings.HasSuffix(id.Name, "off") {
					n++
				}
			}
		}
		return true
	})
	return n
}

// i64Locals returns fd's int64 parameters and the int64 variables its
// body declares at its top, each declared once in fd.
func i64Locals(fd *ast.FuncDecl) map[string]bool {
	vars := map[string]bool{}
	if fd.Type.Params != nil {
		for _, f := range fd.Type.Params.List {
			if id, ok := f.Type.(*ast.Ident); ok && id.Name == "int64" {
				for _, nm := range f.Names {
					vars[nm.Name] = true
				}
			}
		}
	}
	for _, st := range fd.Body.List {
		ds, ok := st.(*ast.DeclStmt)
		if !ok {
			continue
		}
		gd, ok := ds.Decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, sp := range gd.Specs {
			vs := sp.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "int64" && len(vs.Values) == 0 {
				for _, nm := range vs.Names {
					vars[nm.Name] = true
				}
			}
		}
	}
	// A name declared again anywhere (a shadow in a block) is left alone.
	count := map[string]int{}
	ast.Inspect(fd, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, e := range n.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						count[id.Name] += 2
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				count[id.Name]++
			}
		case *ast.Field:
			for _, id := range n.Names {
				count[id.Name]++
			}
		}
		return true
	})
	for v := range vars {
		if count[v] != 1 {
			delete(vars, v)
		}
	}
	return vars
}

// nLoop is an innermost loop and how many loops enclose it.
type nLoop struct {
	states []*nState
	depth  int
}

// innermostLoops appends to out the strongly connected parts of set that
// hold a cycle and no smaller one once their entries are removed.
func innermostLoops(set map[*nState]bool, depth int, out *[]nLoop) {
	for _, scc := range sccs(set) {
		if !cyclic(scc) {
			continue
		}
		// Entries: states jumped to from outside the part (or the first,
		// when only the dispatch enters it).
		rest := map[*nState]bool{}
		for _, s := range scc {
			rest[s] = true
		}
		entries := 0
		for _, s := range scc {
			if s.preds > s.predsIn(scc) {
				delete(rest, s)
				entries++
			}
		}
		if entries == 0 {
			delete(rest, scc[0])
		}
		nested := false
		for _, c := range sccs(rest) {
			if cyclic(c) {
				nested = true
			}
		}
		if nested {
			innermostLoops(rest, depth+1, out)
		} else {
			*out = append(*out, nLoop{scc, depth})
		}
	}
}

func cyclic(scc []*nState) bool {
	if len(scc) > 1 {
		return true
	}
	return slices.Contains(scc[0].succ, scc[0])
}

// sccs returns the strongly connected components of the graph that set
// induces, each in source order (Tarjan's algorithm).
func sccs(set map[*nState]bool) [][]*nState {
	nodes := make([]*nState, 0, len(set))
	for s := range set {
		nodes = append(nodes, s)
	}
	slices.SortFunc(nodes, func(a, b *nState) int { return a.pos - b.pos })
	index := map[*nState]int{}
	low := map[*nState]int{}
	on := map[*nState]bool{}
	var stack []*nState
	var out [][]*nState
	var visit func(v *nState)
	visit = func(v *nState) {
		index[v] = len(index)
		low[v] = index[v]
		stack = append(stack, v)
		on[v] = true
		for _, w := range v.succ {
			if !set[w] {
				continue
			}
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var c []*nState
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				c = append(c, w)
				if w == v {
					break
				}
			}
			slices.SortFunc(c, func(a, b *nState) int { return a.pos - b.pos })
			out = append(out, c)
		}
	}
	for _, v := range nodes {
		if _, seen := index[v]; !seen {
			visit(v)
		}
	}
	return out
}

// versionLoop builds the copies of loop L, named from prefix. It
// returns the copies (labeled statements for the host list), the
// declarations (name, type pairs) they need and, for each of L's
// labeled states, the statements that replace it in the host list (its
// guard, when control enters the loop there, and its block, split after
// each narrowed assignment: a copy that leaves there goes on in the
// rest of the original state). ok is false when L is not versioned.
func versionLoop(L []*nState, vars, addressed map[string]bool, prefix string) (copies []ast.Stmt, decls []string, expand map[*nState][]ast.Stmt, ok bool) {
	if len(L) > narrowMaxStates {
		return nil, nil, nil, false
	}
	nodes := 0
	for _, s := range L {
		ast.Inspect(s.blk, func(ast.Node) bool { nodes++; return true })
	}
	if nodes > narrowMaxNodes {
		return nil, nil, nil, false
	}
	inL := map[string]bool{}
	for _, s := range L {
		inL[s.label] = true
	}
	// Which locals: read whole in the loop, and assigned only by a
	// statement of a state's own list.
	marked := demanded(L, vars)
	for v := range addressed {
		delete(marked, v)
	}
	for _, s := range L {
		top := map[ast.Stmt]bool{}
		for _, st := range s.blk.List {
			top[st] = true
		}
		ast.Inspect(s.blk, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				simple := top[n] && n.Tok == token.ASSIGN && len(n.Lhs) == 1 && len(n.Rhs) == 1
				for _, e := range n.Lhs {
					if id, ok := e.(*ast.Ident); ok && !simple {
						delete(marked, id.Name)
					}
				}
			case *ast.IncDecStmt:
				if id, ok := n.X.(*ast.Ident); ok {
					delete(marked, id.Name)
				}
			}
			return true
		})
	}
	// A state is split after a narrowed assignment only when the rest
	// uses nothing declared before it; otherwise the local is left alone.
	for _, s := range L {
		for j, st := range s.blk.List {
			v, _, ok := topAssign(st, marked)
			if ok && !splittable(s.blk.List, j) {
				delete(marked, v)
			}
		}
	}
	if len(marked) == 0 {
		return nil, nil, nil, false
	}
	cand := make([]string, 0, len(marked))
	for v := range marked {
		cand = append(cand, v)
	}
	slices.Sort(cand)
	shadow := func(v string) string { return prefix + v }
	off := prefix + "off"
	fast := func(label string) string { return prefix + label }
	id := ast.NewIdent

	// Liveness of the narrowed locals at each state's start; any place
	// outside the loop reads them all.
	all := map[string]bool{}
	for _, v := range cand {
		all[v] = true
	}
	liveIn := map[string]map[string]bool{}
	liveAt := func(label string) map[string]bool {
		if inL[label] {
			return liveIn[label]
		}
		return all
	}
	reads := func(n ast.Node, into map[string]bool) {
		ast.Inspect(n, func(x ast.Node) bool {
			if i, ok := x.(*ast.Ident); ok && marked[i.Name] {
				into[i.Name] = true
			}
			return true
		})
	}
	for changed := true; changed; {
		changed = false
		for i := len(L) - 1; i >= 0; i-- {
			s := L[i]
			live := map[string]bool{}
			if s.next != "" {
				for v := range liveAt(s.next) {
					live[v] = true
				}
			}
			for j := len(s.blk.List) - 1; j >= 0; j-- {
				st := s.blk.List[j]
				if v, rhs, ok := topAssign(st, marked); ok {
					delete(live, v)
					reads(rhs, live)
					continue
				}
				reads(st, live)
				ast.Inspect(st, func(x ast.Node) bool {
					if br, ok := x.(*ast.BranchStmt); ok && br.Tok == token.GOTO {
						for v := range liveAt(br.Label.Name) {
							live[v] = true
						}
					}
					return true
				})
			}
			if len(live) != len(liveIn[s.label]) {
				liveIn[s.label] = live
				changed = true
			}
		}
	}

	writeBack := func(except string) []ast.Stmt {
		var out []ast.Stmt
		for _, v := range cand {
			if v != except {
				out = append(out, &ast.AssignStmt{Lhs: []ast.Expr{id(v)}, Tok: token.ASSIGN,
					Rhs: []ast.Expr{call("int64", id(shadow(v)))}})
			}
		}
		return out
	}
	// A jump out of the loop goes through a stub, one per target, that
	// writes the shadows back.
	var stubs []ast.Stmt
	stubbed := map[string]bool{}
	exitTo := func(label string) ast.Stmt {
		if inL[label] {
			return gotoStmt(fast(label))
		}
		if !stubbed[label] {
			stubbed[label] = true
			stubs = append(stubs, &ast.LabeledStmt{Label: id(prefix + "x" + label),
				Stmt: &ast.BlockStmt{List: append(writeBack(""), gotoStmt(label))}})
		}
		return gotoStmt(prefix + "x" + label)
	}
	// narrowed rewrites a copied statement of the loop: jumps and reads.
	narrowed := func(n ast.Node) ast.Node {
		return astutil.Apply(n, func(c *astutil.Cursor) bool {
			switch x := c.Node().(type) {
			case *ast.BranchStmt:
				c.Replace(exitTo(x.Label.Name))
				return false
			case *ast.BinaryExpr:
				if e, ok := narrowCompare(x, marked, shadow); ok {
					c.Replace(e)
					return false
				}
			case *ast.SelectorExpr:
				return false // m.field: no local
			case *ast.Ident:
				if marked[x.Name] {
					// At the local's position: the printer breaks
					// lines where positions do.
					p := x.NamePos
					c.Replace(&ast.CallExpr{Fun: &ast.Ident{NamePos: p, Name: "int64"}, Lparen: p,
						Args: []ast.Expr{&ast.Ident{NamePos: p, Name: shadow(x.Name)}}, Rparen: p})
				}
			}
			return true
		}, nil)
	}
	expand = map[*nState][]ast.Stmt{}
	for _, s := range L {
		var body []ast.Stmt
		var rests []ast.Stmt // the original state's parts after each split
		list := s.blk.List
		cut := len(list)
		for j := len(list) - 1; j >= 0; j-- {
			if _, _, ok := topAssign(list[j], marked); ok && j+1 < cut {
				rests = append([]ast.Stmt{&ast.LabeledStmt{Label: id(fmt.Sprintf("%sr%s_%d", prefix, s.label, j+1)),
					Stmt: &ast.BlockStmt{Lbrace: list[j+1].Pos(), List: list[j+1 : cut]}}}, rests...)
				cut = j + 1
			}
		}
		for j, st := range list {
			v, rhs, ok := topAssign(st, marked)
			if !ok {
				body = append(body, narrowed(cloneNode(st)).(ast.Stmt))
				continue
			}
			// Leaving: the value and the shadows back in the locals, and
			// on with the rest of the original state.
			rest := s.next
			if j+1 < len(list) {
				rest = fmt.Sprintf("%sr%s_%d", prefix, s.label, j+1)
			}
			const tmp = "teastickT"
			leave := append(writeBack(v),
				&ast.AssignStmt{Lhs: []ast.Expr{id(v)}, Tok: token.ASSIGN, Rhs: []ast.Expr{id(tmp)}},
				&ast.AssignStmt{Lhs: []ast.Expr{id(off)}, Tok: token.ASSIGN, Rhs: []ast.Expr{id("true")}},
				gotoStmt(rest))
			body = append(body, &ast.BlockStmt{List: []ast.Stmt{
				&ast.AssignStmt{Lhs: []ast.Expr{id(tmp)}, Tok: token.DEFINE,
					Rhs: []ast.Expr{call("int64", narrowed(cloneNode(rhs)).(ast.Expr))}},
				&ast.IfStmt{
					Cond: &ast.BinaryExpr{X: id(tmp), Op: token.NEQ, Y: call("int64", call("int32", id(tmp)))},
					Body: &ast.BlockStmt{List: leave},
				},
				&ast.AssignStmt{Lhs: []ast.Expr{id(shadow(v))}, Tok: token.ASSIGN, Rhs: []ast.Expr{call("int32", id(tmp))}},
			}})
		}
		if s.next != "" {
			body = append(body, exitTo(s.next))
		}
		copies = append(copies, &ast.LabeledStmt{Label: id(fast(s.label)), Stmt: &ast.BlockStmt{List: body}})
		s.blk.List = list[:cut]
		expand[s] = append([]ast.Stmt{s.blk}, rests...)
	}
	copies = append(copies, stubs...)
	// The guards, where control enters the loop (the dispatch aside: a
	// call resumed inside the loop runs the original until it reaches a
	// guard).
	entries := 0
	for _, s := range L {
		if s.preds > s.predsIn(L) {
			entries++
		}
	}
	for i, s := range L {
		if s.preds <= s.predsIn(L) && (entries > 0 || i > 0) {
			continue
		}
		// On a 64-bit host the guard is constant false: the copies are
		// dead code there, removed by the compiler.
		word32 := &ast.BinaryExpr{X: &ast.BinaryExpr{X: &ast.UnaryExpr{Op: token.XOR, X: call("uint", &ast.BasicLit{Kind: token.INT, Value: "0"})},
			Op: token.SHR, Y: &ast.BasicLit{Kind: token.INT, Value: "32"}}, Op: token.EQL, Y: &ast.BasicLit{Kind: token.INT, Value: "0"}}
		cond := ast.Expr(&ast.BinaryExpr{X: word32, Op: token.LAND, Y: &ast.UnaryExpr{Op: token.NOT, X: id(off)}})
		var live []string
		for v := range liveIn[s.label] {
			live = append(live, v)
		}
		slices.Sort(live)
		for _, v := range live {
			cond = &ast.BinaryExpr{X: cond, Op: token.LAND, Y: &ast.BinaryExpr{
				X: id(v), Op: token.EQL, Y: call("int64", call("int32", id(v)))}}
		}
		var body []ast.Stmt
		for _, v := range cand {
			body = append(body, &ast.AssignStmt{Lhs: []ast.Expr{id(shadow(v))}, Tok: token.ASSIGN, Rhs: []ast.Expr{call("int32", id(v))}})
		}
		body = append(body, gotoStmt(fast(s.label)))
		expand[s] = append([]ast.Stmt{&ast.IfStmt{Cond: cond, Body: &ast.BlockStmt{List: body}}}, expand[s]...)
	}
	for _, st := range copies {
		fillPos(st, L[0].blk.Lbrace)
	}
	for _, s := range L {
		for _, st := range expand[s] {
			fillPos(st, s.blk.Lbrace)
		}
	}
	decls = []string{off, "bool"}
	for _, v := range cand {
		decls = append(decls, shadow(v), "int32")
	}
	return copies, decls, expand, true
}

// predsIn counts the jumps to s from states of L.
func (s *nState) predsIn(L []*nState) int {
	n := 0
	for _, p := range L {
		for _, t := range p.succ {
			if t == s {
				n++
			}
		}
	}
	return n
}

// splittable reports whether list can be cut after statement j: nothing
// the statements up to j declare is used after it.
func splittable(list []ast.Stmt, j int) bool {
	declared := map[string]bool{}
	for _, st := range list[:j+1] {
		ast.Inspect(st, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BlockStmt:
				return n == nil // nested blocks' declarations stay inside
			case *ast.AssignStmt:
				if n.Tok == token.DEFINE {
					for _, e := range n.Lhs {
						if id, ok := e.(*ast.Ident); ok {
							declared[id.Name] = true
						}
					}
				}
			case *ast.ValueSpec:
				for _, id := range n.Names {
					declared[id.Name] = true
				}
			}
			return true
		})
	}
	used := false
	for _, st := range list[j+1:] {
		ast.Inspect(st, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && declared[id.Name] {
				used = true
			}
			return !used
		})
	}
	return !used
}

// topAssign matches `v = e`, v a narrowed local.
func topAssign(st ast.Stmt, marked map[string]bool) (string, ast.Expr, bool) {
	as, ok := st.(*ast.AssignStmt)
	if !ok || as.Tok != token.ASSIGN || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
		return "", nil, false
	}
	v, ok := as.Lhs[0].(*ast.Ident)
	if !ok || !marked[v.Name] {
		return "", nil, false
	}
	return v.Name, as.Rhs[0], true
}

func call(fn string, arg ast.Expr) *ast.CallExpr {
	return &ast.CallExpr{Fun: ast.NewIdent(fn), Args: []ast.Expr{arg}}
}

// narrowCompare compares two narrowed locals in 32 bits: for values that are sign-extended 32-bit ones, signed
// order is the int32 order, unsigned order the uint32 order (a negative
// value is above every non-negative one in both), and equality the
// same.
func narrowCompare(x *ast.BinaryExpr, marked map[string]bool, shadow func(string) string) (ast.Expr, bool) {
	switch x.Op {
	case token.EQL, token.NEQ, token.LSS, token.LEQ, token.GTR, token.GEQ:
	default:
		return nil, false
	}
	a, ua, ok := narrowOperand(x.X, marked, shadow)
	if !ok {
		return nil, false
	}
	b, ub, ok := narrowOperand(x.Y, marked, shadow)
	if !ok || ua != ub {
		return nil, false
	}
	if ua {
		a, b = call("uint32", a), call("uint32", b)
	}
	e := &ast.BinaryExpr{X: a, Op: x.Op, Y: b}
	fillPos(e, x.Pos())
	return e, true
}

// narrowOperand reads a narrowed local, uint64(local) or int64(local) as
// its shadow; unsigned reports uint64(...).
func narrowOperand(e ast.Expr, marked map[string]bool, shadow func(string) string) (ast.Expr, bool, bool) {
	unsigned := false
	for {
		if p, ok := e.(*ast.ParenExpr); ok {
			e = p.X
			continue
		}
		c, ok := e.(*ast.CallExpr)
		if !ok || len(c.Args) != 1 {
			break
		}
		fn, ok := c.Fun.(*ast.Ident)
		if !ok || (fn.Name != "uint64" && fn.Name != "int64" && fn.Name != "i64") {
			break
		}
		if fn.Name == "uint64" {
			unsigned = true
		}
		e = c.Args[0]
	}
	if id, ok := e.(*ast.Ident); ok && marked[id.Name] {
		if !unsigned {
			return ast.NewIdent(shadow(id.Name)), false, true
		}
		return ast.NewIdent(shadow(id.Name)), true, true
	}
	return nil, false, false
}

// demanded returns the locals of vars whose high word the loop's states
// read (see above), to a fixed point over assignments.
func demanded(L []*nState, vars map[string]bool) map[string]bool {
	marked := map[string]bool{}
	for changed := true; changed; {
		changed = false
		mark := func(n string) {
			if vars[n] && !marked[n] {
				marked[n] = true
				changed = true
			}
		}
		for _, s := range L {
			ast.Inspect(s.blk, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.AssignStmt:
					if n.Tok == token.ASSIGN && len(n.Lhs) == 1 && len(n.Rhs) == 1 {
						if v, ok := n.Lhs[0].(*ast.Ident); ok {
							demand(n.Rhs[0], marked[v.Name], mark)
							return false
						}
					}
					for _, e := range n.Rhs {
						demand(e, true, mark)
					}
					for _, e := range n.Lhs {
						if _, ok := e.(*ast.Ident); !ok {
							demand(e, true, mark)
						}
					}
					return false
				case *ast.BranchStmt:
					return false
				case ast.Expr:
					demand(n, true, mark)
					return false
				}
				return true
			})
		}
	}
	return marked
}

// demand walks e, whose high word is read when whole is set.
func demand(e ast.Expr, whole bool, mark func(string)) {
	switch e := e.(type) {
	case *ast.Ident:
		if whole {
			mark(e.Name)
		}
	case *ast.ParenExpr:
		demand(e.X, whole, mark)
	case *ast.BasicLit:
	case *ast.CallExpr:
		if fn, ok := e.Fun.(*ast.Ident); ok && len(e.Args) == 1 {
			switch fn.Name {
			case "int32", "uint32", "int16", "uint16", "int8", "uint8", "i32":
				demand(e.Args[0], false, mark)
				return
			case "int64", "uint64", "i64":
				demand(e.Args[0], whole, mark)
				return
			}
		}
		demand(e.Fun, true, mark)
		for _, a := range e.Args {
			demand(a, true, mark)
		}
	case *ast.BinaryExpr:
		switch e.Op {
		case token.ADD, token.SUB, token.MUL, token.OR, token.XOR, token.AND_NOT:
			demand(e.X, whole, mark)
			demand(e.Y, whole, mark)
		case token.AND:
			if lowConst(e.Y) {
				demand(e.X, false, mark)
			} else if lowConst(e.X) {
				demand(e.Y, false, mark)
			} else {
				demand(e.X, whole, mark)
				demand(e.Y, whole, mark)
			}
		case token.SHL:
			demand(e.X, whole, mark)
			demand(e.Y, true, mark)
		default:
			demand(e.X, true, mark)
			demand(e.Y, true, mark)
		}
	case *ast.UnaryExpr:
		demand(e.X, whole || (e.Op != token.SUB && e.Op != token.XOR), mark)
	case *ast.SelectorExpr:
		demand(e.X, true, mark)
	default:
		ast.Inspect(e, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				mark(id.Name)
			}
			return true
		})
	}
}

// lowConst matches a constant of 32 bits, k or i64(k), 0 <= k < 2^32:
// x & k reads only x's low word.
func lowConst(e ast.Expr) bool {
	if c, ok := e.(*ast.CallExpr); ok && len(c.Args) == 1 {
		if fn, ok := c.Fun.(*ast.Ident); ok && (fn.Name == "i64" || fn.Name == "int64" || fn.Name == "uint64") {
			e = c.Args[0]
		}
	}
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.INT {
		return false
	}
	k, err := strconv.ParseUint(bl.Value, 0, 64)
	return err == nil && k <= 0xffffffff
}

// cloneNode deep-copies an AST node, identifiers unresolved (the copy is
// printed, then type-checked from source). The copy keeps the original's
// positions, so that the printer does not move comments into it.
func cloneNode(n ast.Node) ast.Node {
	return cloneValue(reflect.ValueOf(n)).Interface().(ast.Node)
}

// fillPos gives the nodes of n that have no position pos: the printer
// places comments by position, and one that met a node without any
// would take the position the output has reached, past comments that
// belong further down (a //go:nosplit of a helper at the file's end).
func fillPos(n ast.Node, pos token.Pos) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() && v.Type() != objType && v.Type() != scType {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Field(i)
				if f.Type() == posType {
					// Three positions say something when set: a call's
					// "...", an alias's "=", a channel's direction.
					switch v.Type().Field(i).Name {
					case "Ellipsis", "Assign", "Arrow":
						continue
					}
					if f.Interface().(token.Pos) == token.NoPos {
						f.Set(reflect.ValueOf(pos))
					}
					continue
				}
				walk(f)
			}
		}
	}
	walk(reflect.ValueOf(n))
}

var (
	posType = reflect.TypeOf(token.NoPos)
	objType = reflect.TypeOf((*ast.Object)(nil))
	scType  = reflect.TypeOf((*ast.Scope)(nil))
)

func cloneValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || v.Type() == objType || v.Type() == scType {
			return reflect.Zero(v.Type())
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(cloneValue(v.Elem()))
		return c
	case reflect.Interface:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(cloneValue(v.Elem()))
		return c
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(cloneValue(v.Index(i)))
		}
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			c.Field(i).Set(cloneValue(v.Field(i)))
		}
		return c
	}
	return v
}
