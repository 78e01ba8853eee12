package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// The meter (RATIONALE.md, "Metering"): every actor module is rewritten
// before wazero compiles it so that the guest itself counts its work and
// gives the core back at a bounded interval. The stick's Go runtime
// (TamaGo) has no preemption: a guest that never returns would otherwise
// hold its one core for good, and wazero's deadline watcher, a goroutine,
// would never run to stop it.
//
// The rewrite adds
//   - one mutable i32 global, the fuel, appended to the global section (no
//     global index moves);
//   - one function import, meterModule.meterYield: () -> i32, appended to
//     the import section (every defined function's index moves up by one:
//     calls, ref.func, element segments, global initializers, exports and
//     the start section are renumbered);
//   - at every function entry and right after every loop's block type, a
//     check that subtracts a static cost from the fuel and, when it goes
//     negative, calls yield and stores the fresh fuel it returns.
//
// A check's cost is the number of instructions directly in the function
// body (for the entry) or directly in the loop's body (for a loop header),
// outside any nested loop. Within one activation of a function, or one
// iteration of a loop, control only moves forward at that level (a branch
// back is a branch to a loop header, which pays again), so each of those
// instructions runs at most once per payment: fuel spent bounds the
// instructions executed, with no amortization argument.
//
// The rewrite walks every instruction, so it knows every opcode wazero
// accepts with api.CoreFeaturesV2 and refuses any other (fail closed):
// skipping an immediate it did not know would renumber the wrong bytes.

// meterModule is the host module of the yield import. Its name cannot be a
// waPC or WASI module, and an actor that imports it is refused: only the
// meter's own check may call yield.
const (
	meterModule = "teastick:meter"
	meterYield  = "yield"
)

// errMeter wraps everything the meter refuses.
var errMeter = errors.New("meter")

// simdKnown holds the SIMD opcodes wazero accepts (the OpcodeVec constants
// of its internal/wasm/instruction.go): every byte but the 20 the final
// SIMD proposal leaves unassigned. wazero reads the opcode after 0xfd as
// one byte, so does the meter.
var simdKnown = func() (k [256]bool) {
	for i := range k {
		k[i] = true
	}
	for _, i := range []byte{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb,
		0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		k[i] = false
	}
	return k
}()

// meterShape is what the rewrite learns of a module's index spaces.
type meterShape struct {
	types       uint32 // type section entries, before the rewrite
	importFuncs uint32 // imported functions: the yield import takes this index
	globals     uint32 // imported and defined globals: the fuel takes this index
	yieldType   uint32

	// What a snapshot of an instance after its initializers needs
	// (preinit.go): the mutable globals' indices, and the first thing
	// found that a snapshot of memory and globals would not hold.
	mutable  []uint32
	stateful string
}

// keepsState records the first reason a snapshot would be incomplete.
func (s *meterShape) keepsState(why string) {
	if s.stateful == "" {
		s.stateful = why
	}
}

func (s *meterShape) fn(i uint32) uint32 {
	if i >= s.importFuncs {
		return i + 1
	}
	return i
}

// meter returns module with the fuel global, the yield import and the
// checks added. module has been through precheck (no custom sections, every
// count bounded); the result is a deterministic function of it.
func meter(module []byte) ([]byte, error) {
	out, _, err := meterShaped(module)
	return out, err
}

// meterShaped is meter, also returning what the rewrite learnt.
func meterShaped(module []byte) ([]byte, *meterShape, error) {
	out, sh, err := meterModuleBytes(module)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errMeter, err)
	}
	return out, sh, nil
}

// sectionRank orders sections as WebAssembly 2.0 §5.5.2 requires (the
// data count section sits between element and code).
func sectionRank(id byte) int {
	switch id {
	case 1, 2, 3, 4, 5, 6, 7, 8, 9:
		return int(id)
	case 12:
		return 10
	case 10:
		return 11
	case 11:
		return 12
	}
	return -1
}

func meterModuleBytes(module []byte) ([]byte, *meterShape, error) {
	if len(module) < 8 {
		return nil, nil, errors.New("short module")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := &wreader{b: module, off: 8}
	last := 0
	for r.off < len(r.b) {
		id := r.byte()
		body := r.sub(r.u32())
		if r.err != nil {
			return nil, nil, r.err
		}
		if id == 0 {
			continue
		}
		rank := sectionRank(id)
		if rank < 0 {
			return nil, nil, fmt.Errorf("section id %d not in WebAssembly 2.0", id)
		}
		if rank <= last {
			return nil, nil, fmt.Errorf("section %d out of order or repeated", id)
		}
		last = rank
		secs = append(secs, section{id, body.b})
	}
	find := func(id byte) []byte {
		for _, s := range secs {
			if s.id == id {
				return s.body
			}
		}
		return nil
	}
	// Make sure the three sections the rewrite extends exist.
	for _, id := range []byte{1, 2, 6} {
		if find(id) == nil {
			i := 0
			for i < len(secs) && sectionRank(secs[i].id) < sectionRank(id) {
				i++
			}
			secs = append(secs[:i], append([]section{{id, []byte{0}}}, secs[i:]...)...)
		}
	}

	var sh meterShape
	// Index spaces first: type, import and global sections.
	{
		r := &wreader{b: find(1)}
		sh.types = r.count()
		if r.err != nil {
			return nil, nil, r.err
		}
		sh.yieldType = sh.types
	}
	{
		r := &wreader{b: find(2)}
		for i, n := uint32(0), r.count(); i < n && r.err == nil; i++ {
			mod := r.str()
			r.str()
			switch r.byte() {
			case 0:
				if t := r.u32(); t >= sh.types {
					return nil, nil, fmt.Errorf("import %d: type index %d out of range", i, t)
				}
				sh.importFuncs++
			case 1:
				r.byte()
				r.limits()
			case 2:
				r.limits()
			case 3:
				r.byte()
				r.byte()
				sh.globals++
				sh.keepsState("it imports a global")
			default:
				return nil, nil, fmt.Errorf("import %d: kind not in WebAssembly 2.0", i)
			}
			if mod == meterModule {
				return nil, nil, fmt.Errorf("imports the reserved module %q", meterModule)
			}
		}
		if err := r.done(); err != nil {
			return nil, nil, fmt.Errorf("import section: %w", err)
		}
	}
	{
		r := &wreader{b: find(6)}
		sh.globals += r.count()
		if r.err != nil {
			return nil, nil, r.err
		}
	}
	if sh.importFuncs >= 1<<31 || sh.types >= 1<<31 || sh.globals >= 1<<31 {
		return nil, nil, errors.New("index space too large")
	}

	out := make([]byte, 0, len(module)+len(module)/8+64)
	out = append(out, module[:8]...)
	for _, s := range secs {
		body, err := sh.section(s.id, s.body)
		if err != nil {
			return nil, nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		out = append(out, s.id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out, &sh, nil
}

// section returns the rewritten body of one section.
func (sh *meterShape) section(id byte, body []byte) ([]byte, error) {
	r := &wreader{b: body}
	var out []byte
	switch id {
	case 1: // type: append () -> i32
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n)+1)
		out = append(out, body[r.off:]...)
		out = append(out, 0x60, 0x00, 0x01, 0x7f)
		r.off = len(body) // entries walked by precheck
	case 2: // import: append the yield import
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n)+1)
		out = append(out, body[r.off:]...)
		r.off = len(body) // entries walked above
		out = appendName(out, meterModule)
		out = appendName(out, meterYield)
		out = append(out, 0x00)
		out = binary.AppendUvarint(out, uint64(sh.yieldType))
	case 3: // function
		n := r.count()
		for i := uint32(0); i < n && r.err == nil; i++ {
			if t := r.u32(); t >= sh.types && r.err == nil {
				return nil, fmt.Errorf("function %d: type index %d out of range", i, t)
			}
		}
		if err := r.done(); err != nil {
			return nil, err
		}
		return body, nil
	case 6: // global: rewrite initializers, append the fuel
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n)+1)
		for i := uint32(0); i < n && r.err == nil; i++ {
			t, mut := r.byte(), r.byte()
			if mut == 1 {
				switch t {
				case 0x7f, 0x7e, 0x7d, 0x7c:
					sh.mutable = append(sh.mutable, sh.globals-n+i)
				default:
					sh.keepsState(fmt.Sprintf("global %d is a mutable %#x", sh.globals-n+i, t))
				}
			}
			out = append(out, t, mut)
			out = sh.expr(r, out)
		}
		// (global (mut i32) (i32.const 0)): the first check yields.
		out = append(out, 0x7f, 0x01, 0x41, 0x00, 0x0b)
	case 7: // export
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n))
		for i := uint32(0); i < n && r.err == nil; i++ {
			start := r.off
			r.str()
			kind := r.byte()
			idxStart := r.off
			idx := r.u32()
			if r.err != nil {
				break
			}
			out = append(out, body[start:idxStart]...)
			switch kind {
			case 0:
				idx = sh.fn(idx)
			case 3:
				if idx >= sh.globals {
					return nil, fmt.Errorf("export %d: global index %d out of range", i, idx)
				}
			}
			out = binary.AppendUvarint(out, uint64(idx))
		}
	case 8: // start
		out = binary.AppendUvarint(nil, uint64(sh.fn(r.u32())))
		sh.keepsState("it has a start function")
	case 9: // element
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n))
		for i := uint32(0); i < n && r.err == nil; i++ {
			out = sh.element(r, out)
		}
	case 10: // code
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n))
		for i := uint32(0); i < n && r.err == nil; i++ {
			fb := r.sub(r.u32())
			if r.err != nil {
				break
			}
			code, err := sh.code(fb.b)
			if err != nil {
				return nil, fmt.Errorf("function %d: %w", i, err)
			}
			out = binary.AppendUvarint(out, uint64(len(code)))
			out = append(out, code...)
		}
	case 11: // data
		n := r.count()
		out = binary.AppendUvarint(nil, uint64(n))
		for i := uint32(0); i < n && r.err == nil; i++ {
			flags := r.u32()
			out = binary.AppendUvarint(out, uint64(flags))
			switch flags {
			case 0:
				out = sh.expr(r, out)
			case 1:
			case 2:
				out = binary.AppendUvarint(out, uint64(r.u32()))
				out = sh.expr(r, out)
			default:
				return nil, fmt.Errorf("data segment %d: bad flags", i)
			}
			l := r.count()
			start := r.off
			r.skip(l)
			if r.err == nil {
				out = binary.AppendUvarint(out, uint64(l))
				out = append(out, body[start:r.off]...)
			}
		}
	default: // table, memory, data count: no function or global index
		return body, nil
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// element rewrites one element segment (§5.5.12): function indices and
// ref.func in expressions are renumbered.
func (sh *meterShape) element(r *wreader, out []byte) []byte {
	flags := r.u32()
	if r.err != nil {
		return out
	}
	if flags > 7 {
		r.fail("bad element flags %d", flags)
		return out
	}
	out = binary.AppendUvarint(out, uint64(flags))
	if flags&1 == 0 { // active
		if flags&2 != 0 {
			out = binary.AppendUvarint(out, uint64(r.u32())) // table index
		}
		out = sh.expr(r, out) // offset
	}
	exprs := flags&4 != 0
	if flags&3 != 0 {
		out = append(out, r.byte()) // elemkind or reftype
	}
	m := r.count()
	out = binary.AppendUvarint(out, uint64(m))
	for j := uint32(0); j < m && r.err == nil; j++ {
		if exprs {
			out = sh.expr(r, out)
		} else {
			out = binary.AppendUvarint(out, uint64(sh.fn(r.u32())))
		}
	}
	return out
}

// expr copies a constant expression (§3.3.10), renumbering ref.func and
// refusing a global.get of an index the module does not have (it would
// name the fuel). Opcodes as wazero decodes them with CoreFeaturesV2
// (internal/wasm/binary/const_expr.go).
func (sh *meterShape) expr(r *wreader, out []byte) []byte {
	for r.err == nil {
		start := r.off
		switch op := r.byte(); op {
		case 0x0b: // end
			return append(out, op)
		case 0x41: // i32.const
			r.skipLEB(5)
		case 0x42: // i64.const
			r.skipLEB(10)
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0x23: // global.get
			if g := r.u32(); g >= sh.globals && r.err == nil {
				r.fail("global.get %d out of range", g)
			}
		case 0xd0: // ref.null t
			if t := r.byte(); t != 0x70 && t != 0x6f {
				r.fail("ref.null of type %#x", t)
			}
		case 0xd2: // ref.func
			f := r.u32()
			if r.err == nil {
				out = append(out, op)
				out = binary.AppendUvarint(out, uint64(sh.fn(f)))
			}
			continue
		case 0xfd: // v128.const
			if r.byte() != 0x0c {
				r.fail("bad constant expression")
			}
			r.skip(16)
		default:
			r.fail("opcode %#x in a constant expression", op)
		}
		if r.err == nil {
			out = append(out, r.b[start:r.off]...)
		}
	}
	return out
}

// Instruction kinds the rewrite cares about.
const (
	insOther = iota
	insBlock // block, if: opens a level
	insLoop
	insEnd
	insFunc // call or ref.func: a function index at [immStart, off)
)

// insn reads one instruction of a function body (§5.4) and returns its
// kind; for insFunc, immStart is where the function index starts and fn its
// value. Immediates are read as wazero reads them
// (internal/wasm/func_validation.go): a prefix opcode of 0xfc as LEB128,
// one of 0xfd as one byte.
func (sh *meterShape) insn(r *wreader) (kind int, immStart int, fn uint32) {
	switch op := r.byte(); {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
		sh.blockType(r)
		switch op {
		case 0x03:
			return insLoop, 0, 0
		}
		return insBlock, 0, 0
	case op == 0x0b:
		return insEnd, 0, 0
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b:
		// unreachable, nop, else, return, drop, select
	case op == 0x0c || op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		for i, n := uint32(0), r.count(); i < n && r.err == nil; i++ {
			r.u32()
		}
		r.u32()
	case op == 0x10: // call
		immStart = r.off
		fn = r.u32()
		return insFunc, immStart, fn
	case op == 0x11: // call_indirect
		if t := r.u32(); t >= sh.types && r.err == nil {
			r.fail("call_indirect type %d out of range", t)
		}
		r.u32()
	case op == 0x1c: // select t*
		if r.byte() != 1 {
			r.fail("typed select with other than one type")
		}
		sh.valType(r)
	case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
		r.u32()
	case op == 0x23 || op == 0x24: // global.get, global.set
		if g := r.u32(); g >= sh.globals && r.err == nil {
			r.fail("global %d out of range", g)
		}
	case op == 0x25 || op == 0x26: // table.get, table.set
		r.u32()
		if op == 0x26 {
			sh.keepsState("it writes a table")
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.u32()
		r.u32()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		if r.byte() != 0 {
			r.fail("memory index other than a one-byte zero")
		}
	case op == 0x41: // i32.const
		r.skipLEB(5)
	case op == 0x42: // i64.const
		r.skipLEB(10)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null
		if t := r.byte(); t != 0x70 && t != 0x6f {
			r.fail("ref.null of type %#x", t)
		}
	case op == 0xd1: // ref.is_null
	case op == 0xd2: // ref.func
		immStart = r.off
		fn = r.u32()
		return insFunc, immStart, fn
	case op == 0xfc:
		switch sub := r.u32(); {
		case r.err != nil:
		case sub <= 7: // non-trapping float-to-int
		case sub == 8: // memory.init
			r.u32()
			r.zeroByte()
		case sub == 9: // data.drop
			r.u32()
			sh.keepsState("it drops a data segment")
		case sub == 10: // memory.copy
			r.zeroByte()
			r.zeroByte()
		case sub == 11: // memory.fill
			r.zeroByte()
		case sub == 12 || sub == 14: // table.init, table.copy
			r.u32()
			r.u32()
			sh.keepsState("it writes a table")
		case sub == 13 || sub == 15 || sub == 16 || sub == 17: // elem.drop, table.grow/size/fill
			r.u32()
			switch sub {
			case 13:
				sh.keepsState("it drops an element segment")
			case 15, 17:
				sh.keepsState("it writes a table")
			}
		default:
			r.fail("opcode 0xfc %d not in WebAssembly 2.0", sub)
		}
	case op == 0xfd:
		sub := r.byte()
		switch {
		case r.err != nil:
		case !simdKnown[sub]:
			r.fail("opcode 0xfd %#x unknown", sub)
		case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // v128 loads, store
			r.u32()
			r.u32()
		case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
			r.skip(16)
		case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
			r.byte()
		case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
			r.u32()
			r.u32()
			r.byte()
		}
	default:
		r.fail("opcode %#x not in WebAssembly 2.0", op)
	}
	return insOther, 0, 0
}

func (r *wreader) zeroByte() {
	if r.byte() != 0 {
		r.fail("reserved byte not zero")
	}
}

// blockType reads a block type (§5.4.1) as wazero's DecodeBlockType and
// leb128.DecodeInt33AsInt64 do: an s33 of at most five bytes, negative
// for the empty type or one value type, else a type index.
func (sh *meterShape) blockType(r *wreader) {
	var raw int64
	var c byte
	n := 0
	for shift := 0; ; shift += 7 {
		if n == 5 {
			r.fail("block type longer than five bytes")
			return
		}
		c = r.byte()
		if r.err != nil {
			return
		}
		n++
		raw |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if shift+7 < 33 && c&0x40 != 0 {
				raw |= (1<<33 - 1) << (shift + 7)
			}
			break
		}
	}
	v := raw & (1<<33 - 1)
	if v&(1<<32) != 0 {
		v -= 1 << 33
	}
	if n == 5 && (v < 0) != (c&0x20 != 0) {
		r.fail("block type out of range")
		return
	}
	switch {
	case v == -64, v == -1, v == -2, v == -3, v == -4, v == -5, v == -16, v == -17:
	case v < 0:
		r.fail("block type %d not in WebAssembly 2.0", v)
	case v >= int64(sh.types):
		r.fail("block type index %d out of range", v)
	}
}

// skipLEB skips a LEB128 of at most max bytes, whose value the rewrite
// copies unread (wazero checks it).
func (r *wreader) skipLEB(max int) {
	for i := 0; i < max; i++ {
		if r.byte()&0x80 == 0 || r.err != nil {
			return
		}
	}
	r.fail("LEB128 longer than %d bytes", max)
}

func (sh *meterShape) valType(r *wreader) {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		r.fail("value type %#x not in WebAssembly 2.0", t)
	}
}

// code rewrites one function body: its locals unchanged, a check at entry
// and after each loop's block type, function indices renumbered.
func (sh *meterShape) code(body []byte) ([]byte, error) {
	r := &wreader{b: body}
	for j, m := uint32(0), r.count(); j < m && r.err == nil; j++ {
		r.u32()
		sh.valType(r)
	}
	if r.err != nil {
		return nil, r.err
	}
	start := r.off

	// Pass 1: the cost of each level. costs[0] is the function body's,
	// costs[k] the k-th loop's in order of appearance.
	costs := []int64{0}
	levels := []int{0} // per open block: the cost index it charges to
	for r.err == nil {
		if len(levels) == 0 {
			break
		}
		kind, _, fn := sh.insn(r)
		costs[levels[len(levels)-1]]++
		switch kind {
		case insBlock:
			levels = append(levels, levels[len(levels)-1])
		case insLoop:
			levels = append(levels, len(costs))
			costs = append(costs, 0)
		case insEnd:
			levels = levels[:len(levels)-1]
		case insFunc:
			if fn >= 1<<31 {
				r.fail("function index %d out of range", fn)
			}
		}
	}
	if len(levels) != 0 {
		r.fail("unexpected end of function")
	}
	if err := r.done(); err != nil {
		return nil, err
	}

	// Pass 2: emit.
	out := make([]byte, 0, len(body)+len(body)/4+32)
	out = append(out, body[:start]...)
	out = sh.check(out, costs[0])
	r = &wreader{b: body, off: start}
	copied, loop := start, 1
	for r.off < len(body) {
		kind, immStart, fn := sh.insn(r)
		switch kind {
		case insLoop:
			out = append(out, body[copied:r.off]...)
			out = sh.check(out, costs[loop])
			loop++
			copied = r.off
		case insFunc:
			out = append(out, body[copied:immStart]...)
			out = binary.AppendUvarint(out, uint64(sh.fn(fn)))
			copied = r.off
		}
	}
	out = append(out, body[copied:]...)
	return out, nil
}

// check appends the metering check:
//
//	global.get $fuel  i32.const cost  i32.sub  global.set $fuel
//	block
//	  global.get $fuel  i32.clz  br_if 0     ;; fuel >= 0: go on
//	  call $yield  global.set $fuel
//	end
//
// Seven instructions run when the fuel lasts (block and end are labels,
// no work): clz is zero only for a negative fuel, so it tests the sign in
// one instruction where i32.const 0, i32.lt_s takes two, and br_if skips
// where an if with an empty then would need a jump over its else.
func (sh *meterShape) check(out []byte, cost int64) []byte {
	cost = min(cost, 1<<30)
	g := uint64(sh.globals)
	out = append(out, 0x23) // global.get
	out = binary.AppendUvarint(out, g)
	out = append(out, 0x41) // i32.const
	out = appendSLEB(out, cost)
	out = append(out, 0x6b, 0x24) // i32.sub, global.set
	out = binary.AppendUvarint(out, g)
	out = append(out, 0x02, 0x40, 0x23) // block, global.get
	out = binary.AppendUvarint(out, g)
	out = append(out, 0x67, 0x0d, 0x00, 0x10) // i32.clz, br_if 0, call
	out = binary.AppendUvarint(out, uint64(sh.importFuncs))
	out = append(out, 0x24) // global.set
	out = binary.AppendUvarint(out, g)
	return append(out, 0x0b)
}

// str reads a name.
func (r *wreader) str() string {
	n := r.count()
	start := r.off
	r.skip(n)
	if r.err != nil {
		return ""
	}
	return string(r.b[start:r.off])
}

// sleb reads a signed LEB128 of at most bits bits, as strictly as the
// specification (§5.2.2): at most ceil(bits/7) bytes, and the unused bits
// of the last byte a sign extension.
func (r *wreader) sleb(bits uint) int64 {
	var v int64
	maxBytes := int((bits + 6) / 7)
	for i := 0; ; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if i == maxBytes-1 {
			// The last byte holds bits-7*i value bits, its top one the sign;
			// the rest must repeat it.
			used := bits - uint(7*i)
			if c&0x80 != 0 {
				r.fail("signed LEB128 too long")
				return 0
			}
			sign := c >> (used - 1) & 1
			rest := c >> used
			if sign == 1 && rest != 0x7f>>used || sign == 0 && rest != 0 {
				r.fail("signed LEB128 out of range")
				return 0
			}
		}
		v |= int64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if shift := uint(7 * (i + 1)); shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

// Fuel slices. A yield hands the guest a slice of fuel meant to last
// about meterTarget of its work; the slice is recalibrated from the time
// the last slice took, within [meterMinSlice, meterMaxSlice].
const (
	meterTarget   = time.Millisecond
	meterMinSlice = 1 << 10
	meterMaxSlice = 1 << 30
)

// meterFirstSlice is a version's slice before any calibration: about a
// millisecond of wazero's interpreter on the stick (a few million simple
// instructions a second under QEMU), less than one on a host; compiled
// code (wazero's compiler, or translated to Go) gets more.
func meterFirstSlice(engine string) int64 {
	if engine == "compiler" || engine == engineNative {
		return 1 << 20
	}
	return 1 << 13
}

// nextSlice calibrates: the guest used slice instructions in elapsed;
// the next slice aims at meterTarget, moving at most a factor 2 per yield
// (one slice that spent its time in a host call does not collapse it).
func nextSlice(slice int64, elapsed time.Duration) int64 {
	want := slice * 2
	if elapsed > 0 {
		want = int64(float64(slice) * float64(meterTarget) / float64(elapsed))
	}
	want = max(min(want, slice*2), slice/2)
	return max(min(want, meterMaxSlice), meterMinSlice)
}

// meterState is a version's calibration and counters.
type meterState struct {
	slice  atomic.Int64
	yields atomic.Uint64
	// given is the time calls spent in their yields' Gosched: what ran
	// meanwhile (other actors, the network, the console), not the call.
	given atomic.Int64
	// fixed, when non-zero, is the slice every yield grants (tests).
	fixed int64
}

// yield is the host side of the check: it ends a call past its deadline or
// cancelled, else gives the core to whatever else is runnable and returns
// the next slice.
func (v *version) yield(ctx context.Context, _ api.Module, stack []uint64) {
	now := time.Now()
	v.meter.yields.Add(1)
	if d, ok := ctx.Deadline(); ok && !now.Before(d) {
		panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
	}
	switch ctx.Err() {
	case nil:
	case context.DeadlineExceeded:
		panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
	default:
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
	slice := v.meter.slice.Load()
	cs, _ := ctx.Value(callKey{}).(*callState)
	// Calibrate on a slice this call ran entirely: from the end of its
	// last yield to now.
	if cs != nil && !cs.lastYield.IsZero() {
		slice = nextSlice(cs.lastSlice, now.Sub(cs.lastYield))
		v.meter.slice.Store(slice)
	}
	if v.meter.fixed != 0 {
		slice = v.meter.fixed
	}
	before := time.Now()
	goruntime.Gosched()
	after := time.Now()
	v.meter.given.Add(int64(after.Sub(before)))
	if cs != nil {
		cs.lastYield, cs.lastSlice = after, slice
	}
	stack[0] = uint64(slice)
}

func (v *version) instantiateMeter(ctx context.Context) error {
	_, err := v.wr.NewHostModuleBuilder(meterModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(v.yield), nil, []api.ValueType{api.ValueTypeI32}).
		Export(meterYield).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("%w: meter host module: %v", ErrInvalidModule, err)
	}
	return nil
}
