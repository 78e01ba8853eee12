package runtime

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// MaxModuleSize bounds an actor module.
const MaxModuleSize = 16 << 20

// maxLocals bounds the locals of one function (V8 and SpiderMonkey use the
// same figure).
const maxLocals = 50000

// MaxTableElements bounds each table of an actor: its initial size, and
// the maximum table.grow can reach (RATIONALE.md, "Tables are bounded
// like memory"). A table of that many function references is 512 KiB in
// wazero's interpreter on the stick (a word each) and 1 MiB natively (an
// interface each); Go's wasm port puts every function of a program in its
// one table, 5,876 for the echo example.
const MaxTableElements = 1 << 17

// precheck walks the structure of a WebAssembly binary before wazero
// decodes it and returns the module without its custom sections.
//
// wazero's decoder sizes its allocations from counts it reads before
// checking them against the bytes that remain: a 473-byte module whose
// export section claims 2^31 entries makes it allocate gigabytes (found by
// FuzzModule; the same holds for imports, locals, data segments, element
// vectors and value type lists). Every count a decoder would allocate from
// is checked here against the bytes that could hold it, so no module makes
// the runtime allocate more than a small multiple of its own size.
// Instruction bodies are left to wazero's validator.
//
// Tables are bounded like linear memory (MaxTableElements): a larger
// initial size is refused, and a table's maximum is lowered to the bound
// (or set, when it declares none), so that table.grow fails past it in
// every engine instead of allocating what the stick does not have.
//
// Custom sections carry only names and debug data; they are dropped so
// their contents never reach a decoder (and the stick does not keep the
// names of a Go module, often a third of its size).
func precheck(module []byte) ([]byte, error) {
	if len(module) > MaxModuleSize {
		return nil, fmt.Errorf("module of %d bytes, at most %d", len(module), MaxModuleSize)
	}
	if len(module) < 8 || string(module[:4]) != "\x00asm" || string(module[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("not a WebAssembly 1.0 binary (bad magic or version)")
	}
	out := make([]byte, 0, len(module))
	out = append(out, module[:8]...)
	r := &wreader{b: module, off: 8}
	sawDataCount := false
	for r.off < len(r.b) {
		start := r.off
		id := r.byte()
		size := r.u32()
		body := r.sub(size)
		if r.err != nil {
			return nil, fmt.Errorf("section at offset %d: %w", start, r.err)
		}
		if id == 0 {
			continue // custom
		}
		if err := checkSection(id, body, len(module)); err != nil {
			return nil, fmt.Errorf("section %d at offset %d: %w", id, start, err)
		}
		if id == 11 && !sawDataCount {
			if merged := coalesceData(body.b); merged != nil {
				out = append(out, 11)
				out = binary.AppendUvarint(out, uint64(len(merged)))
				out = append(out, merged...)
				continue
			}
		}
		sawDataCount = sawDataCount || id == 12
		if id == 4 {
			tables, err := boundTables(body.b)
			if err != nil {
				return nil, fmt.Errorf("section 4 at offset %d: %w", start, err)
			}
			out = append(out, 4)
			out = binary.AppendUvarint(out, uint64(len(tables)))
			out = append(out, tables...)
			continue
		}
		out = append(out, module[start:r.off]...)
	}
	return out, nil
}

func checkSection(id byte, r *wreader, moduleLen int) error {
	switch id {
	case 8: // start
		r.u32()
		return r.done()
	case 12: // data count
		// A count is no allocation, but keep it honest: every segment
		// takes at least one byte of the module.
		if n := r.u32(); r.err == nil && uint64(n) > uint64(moduleLen) {
			return errors.New("data count larger than the module")
		}
		return r.done()
	}
	n := r.count()
	for i := uint32(0); i < n && r.err == nil; i++ {
		switch id {
		case 1: // type
			if r.byte() != 0x60 {
				return fmt.Errorf("type %d is not a function type", i)
			}
			r.skip(r.count()) // params
			r.skip(r.count()) // results
		case 2: // import
			r.name()
			r.name()
			switch r.byte() {
			case 0:
				r.u32()
			case 1:
				r.byte()
				r.limits()
			case 2:
				r.limits()
			case 3:
				r.byte()
				r.byte()
			case 4:
				r.byte()
				r.u32()
			default:
				return fmt.Errorf("import %d: bad kind", i)
			}
		case 3: // function
			r.u32()
		case 4: // table
			r.byte()
			r.limits()
		case 5: // memory
			r.limits()
		case 6: // global
			r.byte()
			r.byte()
			r.expr()
		case 7: // export
			r.name()
			r.byte()
			r.u32()
		case 9: // element
			checkElement(r)
		case 10: // code
			body := r.sub(r.u32())
			var locals uint64
			for j, m := uint32(0), body.count(); j < m && body.err == nil; j++ {
				locals += uint64(body.u32())
				t := body.byte()
				if t == 0x63 || t == 0x64 { // (ref null? ht)
					body.s33()
				}
			}
			if body.err != nil {
				return fmt.Errorf("function %d: %w", i, body.err)
			}
			if locals > maxLocals {
				return fmt.Errorf("function %d declares %d locals, at most %d", i, locals, maxLocals)
			}
		case 11: // data
			switch r.u32() {
			case 0:
				r.expr()
			case 1:
			case 2:
				r.u32()
				r.expr()
			default:
				return fmt.Errorf("data segment %d: bad flags", i)
			}
			r.skip(r.count())
		case 13: // tag
			r.byte()
			r.u32()
		default:
			return fmt.Errorf("unknown section id")
		}
	}
	return r.done()
}

func checkElement(r *wreader) {
	flags := r.u32()
	if flags > 7 {
		r.fail("bad element flags %d", flags)
		return
	}
	if flags&1 == 0 { // active
		if flags&2 != 0 {
			r.u32() // table index
		}
		r.expr() // offset
	}
	exprs := flags&4 != 0
	if flags&3 != 0 {
		r.byte() // elemkind or reftype
	}
	for j, m := uint32(0), r.count(); j < m && r.err == nil; j++ {
		if exprs {
			r.expr()
		} else {
			r.u32()
		}
	}
}

// wreader reads LEB128 and vectors from a bounded slice; the first error
// sticks.
type wreader struct {
	b   []byte
	off int
	err error
}

func (r *wreader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *wreader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *wreader) leb(maxBits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= maxBits+7 {
			r.fail("LEB128 too long")
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

// u32 reads an unsigned LEB128 of at most 32 bits as strictly as wazero
// (and §5.2.2): at most five bytes, the unused bits of the fifth zero. The
// meter re-encodes what it reads; it must not turn an encoding wazero
// refuses into one it takes.
func (r *wreader) u32() uint32 {
	var v uint32
	for i := 0; i < 5; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if i == 4 && c&0xf0 != 0 {
			r.fail("u32 out of range")
			return 0
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("LEB128 too long")
	return 0
}

func (r *wreader) s33() { r.leb(33) }

// count reads a vector length and checks that the bytes left could hold
// that many entries of at least one byte.
func (r *wreader) count() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.off) {
		r.fail("vector of %d entries in %d bytes", n, len(r.b)-r.off)
		return 0
	}
	return n
}

func (r *wreader) skip(n uint32) {
	if r.err == nil && int64(n) > int64(len(r.b)-r.off) {
		r.fail("%d bytes past the end", n)
		return
	}
	r.off += int(n)
}

func (r *wreader) sub(n uint32) *wreader {
	start := r.off
	r.skip(n)
	if r.err != nil {
		return &wreader{err: r.err}
	}
	return &wreader{b: r.b[start:r.off]}
}

func (r *wreader) name() { r.skip(r.count()) }

func (r *wreader) limits() {
	switch flags := r.byte(); flags {
	case 0, 4:
		r.leb(64)
	case 1, 2, 3, 5, 6, 7:
		r.leb(64)
		r.leb(64)
	default:
		r.fail("bad limits flags %#x", flags)
	}
}

// expr skips a constant expression up to its end opcode.
func (r *wreader) expr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x23, 0xd2: // i32.const, global.get, ref.func
			r.leb(64)
		case 0x42: // i64.const
			r.leb(64)
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0xd0: // ref.null
			r.s33()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xfd: // v128.const
			if r.u32() != 12 {
				r.fail("bad constant expression")
			}
			r.skip(16)
		default:
			r.fail("opcode %#x in a constant expression", op)
		}
	}
}

func (r *wreader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d bytes left over", len(r.b)-r.off)
	}
	return r.err
}

// coalesceData merges the active data segments of a data section into few
// segments, filling gaps of up to dataGap bytes with zeros, and returns the
// new section body, or nil to keep the section as it is.
//
// Go's linker emits one segment per run of non-zero bytes (30,711 in the
// echo actor), and wazero keeps a 24-byte slice header per segment in every
// instance: 720 KiB per idle instance, three times the budget. The merge is
// exact: memory starts zeroed, and it is done only when every segment is
// active, on memory 0, at an i32.const offset, no two overlap (so the order
// they apply in does not matter), and no data count section lets code name segments (memory.init,
// data.drop).
func coalesceData(body []byte) []byte {
	const dataGap = 1024
	type seg struct {
		off  uint64
		data []byte
	}
	r := &wreader{b: body}
	n := r.count()
	in := make([]seg, 0, min(n, 1<<16))
	for i := uint32(0); i < n; i++ {
		if r.u32() != 0 || r.byte() != 0x41 {
			return nil
		}
		// i32.const takes a signed LEB128 (§5.4.7): one byte 0x7f is -1,
		// not 127. A negative offset, or an encoding the specification
		// does not allow, leaves the section to wazero, which refuses the
		// one (out of bounds) and decides on the other itself.
		soff := r.sleb(32)
		if r.byte() != 0x0b || r.err != nil || soff < 0 {
			return nil
		}
		off := uint64(soff)
		l := r.count()
		start := r.off
		r.skip(l)
		if r.err != nil {
			return nil
		}
		in = append(in, seg{off, body[start:r.off]})
	}
	if r.done() != nil {
		return nil
	}
	// Without overlaps every byte comes from one segment, so the order in
	// which they apply does not matter.
	slices.SortStableFunc(in, func(a, b seg) int { return cmp.Compare(a.off, b.off) })
	var segs []seg
	var end uint64
	for i, s := range in {
		if i > 0 && s.off < end {
			return nil
		}
		if len(segs) > 0 && s.off-end <= dataGap {
			last := &segs[len(segs)-1]
			last.data = append(last.data, make([]byte, s.off-end)...)
			last.data = append(last.data, s.data...)
		} else {
			segs = append(segs, seg{s.off, append([]byte(nil), s.data...)})
		}
		end = s.off + uint64(len(s.data))
	}
	if len(segs) >= int(n) {
		return nil
	}
	out := binary.AppendUvarint(nil, uint64(len(segs)))
	for _, s := range segs {
		out = append(out, 0, 0x41)
		out = appendSLEB(out, int64(s.off))
		out = append(out, 0x0b)
		out = binary.AppendUvarint(out, uint64(len(s.data)))
		out = append(out, s.data...)
	}
	return out
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// boundTables returns the table section body with every table's maximum
// at most MaxTableElements, or an error for a table whose initial size is
// above it (WebAssembly 2.0 §5.5.6: reftype, then limits §5.3.7: 0x00 min
// or 0x01 min max).
func boundTables(body []byte) ([]byte, error) {
	r := &wreader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		ref := r.byte()
		flags := r.byte()
		var lo, hi uint64
		switch flags {
		case 0:
			lo, hi = r.leb(32), MaxTableElements
		case 1:
			lo, hi = r.leb(32), r.leb(32)
		default:
			r.fail("table %d: limits flags %#x", i, flags)
		}
		if r.err != nil {
			break
		}
		if lo > MaxTableElements {
			return nil, fmt.Errorf("table %d: %d initial elements, at most %d", i, lo, MaxTableElements)
		}
		hi = min(hi, MaxTableElements)
		out = append(out, ref, 1)
		out = binary.AppendUvarint(out, lo)
		out = binary.AppendUvarint(out, hi)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}
