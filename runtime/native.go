package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	goruntime "runtime"
	"strings"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/teastick/teastick/runtime/native"
)

// The native engine (ARCHITECTURE.md, "Actor runtime"; RATIONALE.md,
// "Native actors"): actors translated to Go at release time by wasm2go
// (runtime/native/translate) and compiled into the binary. A version runs
// natively when its Spec asks for it (the manifest marks the entry native)
// and the binary's table (package native) holds exactly its CID under
// the same memory limit. Everything but the execution of the guest's
// code is the interpreter's: the same pool, limits, waPC and WASI host
// functions (through guestMem), grants, meter (its yield is an import
// like any other), initializers and errors.

// engineNative is the engine Info reports for a version run natively.
const engineNative = "native"

// nativeFor returns the translated actor to run spec with, or nil when
// the interpreter must run it: the Spec does not ask for it, the binary
// holds no translation of its CID, or the translation was made under
// another memory limit (its memory maximum is baked into the code).
func (r *Runtime) nativeFor(spec Spec, lim Limits) *native.Actor {
	if !spec.Native {
		return nil
	}
	a, ok := native.Lookup(spec.CID)
	switch {
	case !ok:
		r.log.Debug("no native translation: the interpreter runs the actor", "actor", spec.Name, "cid", spec.CID.String())
		return nil
	case a.MemoryPages != lim.MemoryPages:
		r.log.Warn("native translation made under another memory limit: the interpreter runs the actor",
			"actor", spec.Name, "cid", spec.CID.String(), "translated_pages", a.MemoryPages, "memory_pages", lim.MemoryPages)
		return nil
	case !a.Metered:
		r.log.Warn("native translation is not metered: the interpreter runs the actor", "actor", spec.Name, "cid", spec.CID.String())
		return nil
	}
	return a
}

// RunsNatively reports whether Prepare would run spec natively: it asks
// for it and this binary holds its translation under the same memory
// limit. Such a spec needs no module bytes (the stick then fetches none).
func (r *Runtime) RunsNatively(spec Spec) bool {
	lim, err := spec.Limits.withDefaults()
	if err != nil || !spec.Native {
		return false
	}
	return r.nativeFor(spec, lim) != nil
}

// newNativeVersion loads a translated actor. The module bytes, when
// given, are checked against the CID as for the interpreter; the code is
// the binary's, checked at translation (translate.Prepare) and measured
// with the image.
func (r *Runtime) newNativeVersion(ctx context.Context, spec Spec, lim Limits, a *native.Actor) (*version, error) {
	if spec.Module != nil {
		if err := verifyModule(spec.CID, spec.Module); err != nil {
			return nil, err
		}
	}
	if a.MinPages > lim.MemoryPages {
		return nil, fmt.Errorf("%w: initial memory of %d pages above the limit of %d", ErrInvalidModule, a.MinPages, lim.MemoryPages)
	}
	v := r.versionShell(spec, lim, engineNative, a.Metered)
	v.nat = a
	v.natFuncs = make([]hostFn, len(a.Imports))
	for i, im := range a.Imports {
		f, err := v.nativeImport(im)
		if err != nil {
			return nil, err
		}
		v.natFuncs[i] = f
	}
	v.inits = a.Inits
	in, err := v.newInstance(ctx)
	if err != nil {
		if !errors.Is(err, ErrInvalidModule) {
			err = fmt.Errorf("%w: %w", ErrInvalidModule, err)
		}
		return nil, err
	}
	v.idle <- in
	return v, nil
}

type hostFn = func(ctx context.Context, cs *callState, m guestMem, stack []uint64)

// nativeImport links one import of a translated module to the host
// function wazero would link it to, with the same signature checks.
func (v *version) nativeImport(im native.Import) (hostFn, error) {
	var f hostFunc
	switch im.Module {
	case wapcModule:
		var ok bool
		if f, ok = wapcFuncs[im.Name]; !ok {
			return nil, fmt.Errorf("%w: imports %s.%s, which waPC does not define", ErrInvalidModule, im.Module, im.Name)
		}
	case wasiModule:
		var ok bool
		if f, ok = wasiFuncs[im.Name]; !ok {
			if len(im.Results) != 1 || im.Results[0] != native.I32 {
				return nil, fmt.Errorf("%w: imports %s.%s with a signature WASI preview 1 does not have", ErrInvalidModule, im.Module, im.Name)
			}
			return func(_ context.Context, _ *callState, _ guestMem, s []uint64) { s[0] = errnoNosys }, nil
		}
	case meterModule:
		if !v.metered || im.Name != meterYield {
			return nil, fmt.Errorf("%w: imports %s.%s, reserved for the runtime", ErrInvalidModule, im.Module, im.Name)
		}
		f = hostFunc{nil, []api.ValueType{i32}, func(ctx context.Context, _ *callState, _ guestMem, s []uint64) { v.yield(ctx, nil, s) }}
	default:
		return nil, fmt.Errorf("%w: imports %s.%s; actors may import only %q and %q", ErrInvalidModule, im.Module, im.Name, wapcModule, wasiModule)
	}
	if string(im.Params) != string(f.params) || string(im.Results) != string(f.results) {
		return nil, fmt.Errorf("%w: import %s.%s: signature mismatch", ErrInvalidModule, im.Module, im.Name)
	}
	return f.fn, nil
}

// nativeInstance is one instance of a translated module and its side of
// the imports.
type nativeInstance struct {
	v    *version
	inst native.Instance
	mem  nativeMem
	// restored: the instance started from its actor's Snapshot.
	restored bool
	// ctx and cs are the call running on the instance (one at a time).
	ctx context.Context
	cs  *callState
}

// Call implements native.Host.
func (n *nativeInstance) Call(i int, stack []uint64) {
	n.v.natFuncs[i](n.ctx, n.cs, n.mem, stack)
}

// newNativeInstanceRun makes a native instance and runs its
// initializers under ctx, as newInstance does in wazero, or starts it
// from the state they leave (preinit.go).
func (v *version) newNativeInstanceRun(ctx context.Context, cs *callState, in *instance) (*instance, error) {
	n := &nativeInstance{v: v}
	in.nat = n
	// New runs the module's start function, if any, as wazero's
	// instantiation does: under the initializers' deadline, trapping
	// alike.
	if err := n.run(ctx, cs, func(native.Instance) { n.inst = v.nat.New(n) }); err != nil {
		return nil, fmt.Errorf("%w: instantiate: %v", ErrInvalidModule, err)
	}
	if s := v.snapshotFor(); s != nil {
		var err error
		if rerr := n.run(ctx, cs, func(native.Instance) { err = n.restore(s, in) }); rerr != nil || err != nil {
			return nil, fmt.Errorf("%w: restore: %v", ErrInvalidModule, errors.Join(rerr, err))
		}
		n.mem = nativeMem{n.inst.Memory()}
		v.instances.Add(1)
		return in, nil
	}
	reserveMemory(n.inst.Memory(), v.limits.MemoryPages)
	n.mem = nativeMem{n.inst.Memory()}
	for _, name := range v.inits {
		if err := n.run(ctx, cs, func(i native.Instance) { i.Init(name) }); err != nil {
			var ee *sys.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == 0 && name == "_start" {
				return nil, fmt.Errorf("%w: _start exited: build the actor as a reactor (Go: -buildmode=c-shared)", ErrInvalidModule)
			}
			if errors.As(err, &ee) && ee.ExitCode() == sys.ExitCodeDeadlineExceeded {
				return nil, fmt.Errorf("%w: %s: %s ran past %v", ErrDeadline, v.name, name, max(v.limits.Timeout, v.rt.cfg.InitTimeout))
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidModule, name, err)
		}
	}
	in.wasi.flush()
	v.instances.Add(1)
	return in, nil
}

// reserveMemory gives a new instance's linear memory room to double
// (at most to its limit of limitPages) without being moved (RATIONALE.md,
// "Native actors", memory growth). wasm2go's memory.grow appends to the
// memory's slice, which reallocates and copies all of it whenever the
// capacity runs out (by a quarter more each time for large slices); a Go
// guest's heap grows its memory a few pages at a time as it works, and
// each move copied megabytes. The room is capacity only: every access
// the generated code and the host functions make is bounded by the
// slice's length, the memory's size, and a grow within the capacity
// extends the length over bytes nothing has written (append clears
// them), so the guest sees exactly the memory it would have.
func reserveMemory(p *[]byte, limitPages uint32) {
	b := *p
	want := room(len(b), limitPages)
	if want <= uint64(cap(b)) || want > math.MaxInt {
		return
	}
	nb := make([]byte, len(b), int(want))
	copy(nb, b)
	*p = nb
}

// room is the capacity reserveMemory gives a new memory of n bytes.
func room(n int, limitPages uint32) uint64 {
	return min(2*uint64(n), uint64(limitPages)<<16)
}

// run runs f on the instance for the call cs under ctx, and turns a trap
// (a panic of the generated code or of a host function) into the error
// wazero would return for it.
func (n *nativeInstance) run(ctx context.Context, cs *callState, f func(native.Instance)) (err error) {
	n.ctx, n.cs = ctx, cs
	defer func() {
		n.ctx, n.cs = nil, nil
		if r := recover(); r != nil {
			err = nativeTrap(r)
		}
	}()
	f(n.inst)
	return nil
}

// nativeTrap maps what a translated module panics with to wazero's
// errors (its wasmruntime errors, "wasm error: ..."): wasm2go panics
// with the trap's name as a string, and Go's own bounds, division and
// type-assertion checks stand for the rest.
func nativeTrap(r any) error {
	switch e := r.(type) {
	case *sys.ExitError:
		return e
	case string:
		return errors.New("wasm error: " + e)
	case *goruntime.TypeAssertionError:
		// call_indirect: a null entry, or a function of another type.
		if strings.Contains(e.Error(), " is nil, not ") {
			return errors.New("wasm error: invalid table access")
		}
		return errors.New("wasm error: indirect call type mismatch")
	case goruntime.Error:
		msg := e.Error()
		switch {
		case strings.Contains(msg, "divide by zero"):
			return errors.New("wasm error: integer divide by zero")
		case strings.Contains(msg, "out of range"):
			return errors.New("wasm error: out of bounds memory access")
		}
		return fmt.Errorf("%w (recovered)", e)
	case error:
		return fmt.Errorf("%w (recovered)", e)
	}
	return fmt.Errorf("%v (recovered)", r)
}

// nativeMem is a translated instance's linear memory as host functions
// see it (guestMem), with wazero's bounds semantics.
type nativeMem struct{ p *[]byte }

func (m nativeMem) Size() uint32 { return uint32(len(*m.p)) }

func (m nativeMem) Read(off, n uint32) ([]byte, bool) {
	b := *m.p
	if uint64(off)+uint64(n) > uint64(len(b)) {
		return nil, false
	}
	return b[off : off+n : off+n], true
}

func (m nativeMem) Write(off uint32, v []byte) bool {
	b := *m.p
	if uint64(off)+uint64(len(v)) > uint64(len(b)) {
		return false
	}
	copy(b[off:], v)
	return true
}

func (m nativeMem) WriteUint32Le(off, v uint32) bool {
	b, ok := m.Read(off, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func (m nativeMem) WriteUint64Le(off uint32, v uint64) bool {
	b, ok := m.Read(off, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}
