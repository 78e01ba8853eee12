package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/runtime/native"
)

// NativeMaxDepth bounds nested calls of a translated module's functions
// (host functions included), as wazero's interpreter bounds its call
// stack (callStackCeiling in internal/engine/interpreter, 2000 frames):
// an actor that recurses runs as deep natively as in the interpreter, and
// one more call traps with "stack overflow" where Go would grow its stack
// until the stick's RAM runs out (RATIONALE.md, "Native actors").
const NativeMaxDepth = 2000

// NativeModule is a module made ready for translation by PrepareNative:
// the bytes to give wasm2go and what is baked into them.
type NativeModule struct {
	// Wasm is the module metered (meter.go) with its memory maximum set
	// to the actor's memory limit (or kept, if lower).
	Wasm []byte
	// Actor describes it as the table of native actors will (New unset),
	// with the Snapshot its instances start from, if any.
	Actor native.Actor
	// NoSnapshot says why Actor has no Snapshot.
	NoSnapshot string
	// MemoryCap is the capacity, in bytes, New gives the linear memory:
	// the room an instance gets to grow in place (reserveMemory), at
	// least the size a Snapshot restores.
	MemoryCap uint64
}

// PrepareNative checks module as Load does, with the interpreter (the CID,
// precheck, the meter's rewrite, wazero's validation under lim, the
// shape, the links and one instance with its initializers), and returns
// what translation needs. It is the only way modules reach the translator
// (runtime/native/translate): a module the runtime would refuse is never
// translated. The instance's state after its initializers becomes the
// Snapshot native instances start from, when it is all of their state
// (preinit.go).
func PrepareNative(ctx context.Context, name string, c cid.Cid, module []byte, lim Limits) (*NativeModule, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := verifyModule(c, module); err != nil {
		return nil, fmt.Errorf("prepare %s (%s): %w", name, c, err)
	}
	// The same bytes newVersion compiles (the rewrites are functions of
	// the module), with the memory maximum wasm2go bakes in.
	wasm, err := precheck(module)
	var sh *meterShape
	if err == nil {
		wasm, sh, err = meterShaped(wasm)
	}
	var minPages uint32
	if err == nil {
		wasm, minPages, err = setMemoryMax(wasm, lim.MemoryPages)
	}
	if err != nil {
		return nil, fmt.Errorf("prepare %s (%s): %w: %v", name, c, ErrInvalidModule, err)
	}
	r := New(Config{Engine: EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer r.Close()
	rec := &initRecord{globals: sh.mutable}
	v, err := r.newVersion(ctx, Spec{Name: name, CID: c, Module: module, Limits: lim, preinit: rec})
	if err != nil {
		return nil, fmt.Errorf("prepare %s (%s): %w", name, c, err)
	}
	defer v.retire()
	a := native.Actor{
		Name:        name,
		CID:         c,
		MemoryPages: lim.MemoryPages,
		MinPages:    minPages,
		MaxDepth:    NativeMaxDepth,
		Metered:     v.metered,
		Inits:       append([]string(nil), v.inits...),
	}
	for _, d := range v.compiled.ImportedFunctions() {
		mod, n, _ := d.Import()
		im := native.Import{Module: mod, Name: n, Params: []byte{}, Results: []byte{}}
		for _, t := range d.ParamTypes() {
			im.Params = append(im.Params, t)
		}
		for _, t := range d.ResultTypes() {
			im.Results = append(im.Results, t)
		}
		a.Imports = append(a.Imports, im)
	}
	nm := &NativeModule{Wasm: wasm, Actor: a}
	if nm.Actor.Snapshot, nm.NoSnapshot, err = v.snapshot(ctx, sh, rec); err != nil {
		return nil, fmt.Errorf("prepare %s (%s): snapshot: %w", name, c, err)
	}
	nm.MemoryCap = room(int(minPages)<<16, lim.MemoryPages)
	if s := nm.Actor.Snapshot; s != nil {
		nm.MemoryCap = max(nm.MemoryCap, uint64(s.Pages)<<16)
	}
	return nm, nil
}

// setMemoryMax sets the maximum of the module's one memory (WebAssembly
// 2.0 §5.5.8, limits §5.3.4) to limit, or keeps it if lower, as wazero's
// WithMemoryLimitPages does at run time; it returns the initial size.
// wasm2go bakes the maximum into the code (memory.grow fails past it).
func setMemoryMax(module []byte, limit uint32) ([]byte, uint32, error) {
	out := append([]byte(nil), module[:8]...)
	r := &wreader{b: module, off: 8}
	var minPages uint32
	found := false
	for r.off < len(r.b) {
		id := r.byte()
		body := r.sub(r.u32())
		if r.err != nil {
			return nil, 0, r.err
		}
		b := body.b
		if id == 5 {
			if body.count() != 1 {
				return nil, 0, errors.New("memory section must hold one memory")
			}
			flags := body.byte()
			initial := body.u32()
			max := limit
			switch flags {
			case 0:
			case 1:
				max = body.u32()
			default:
				return nil, 0, fmt.Errorf("memory limits flags %#x", flags)
			}
			if body.err != nil || body.off != len(body.b) {
				return nil, 0, errors.New("malformed memory section")
			}
			if initial > limit {
				return nil, 0, fmt.Errorf("initial memory of %d pages above the limit of %d", initial, limit)
			}
			b = []byte{1, 1}
			b = binary.AppendUvarint(b, uint64(initial))
			b = binary.AppendUvarint(b, uint64(min(max, limit)))
			minPages, found = initial, true
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	if !found {
		return nil, 0, errors.New("no memory section")
	}
	return out, minPages, nil
}
