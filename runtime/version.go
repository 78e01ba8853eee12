package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/teastick/teastick/runtime/internal/meteroff"
	"github.com/teastick/teastick/runtime/native"
)

// compilerSupported mirrors wazero's own test (internal/platform): its
// compiler targets amd64 and arm64 on hosted operating systems.
func compilerSupported() bool {
	switch goruntime.GOOS {
	case "linux", "darwin", "freebsd", "windows":
	default:
		return false
	}
	return goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64"
}

// Stats counts what happened to one actor version.
type Stats struct {
	Calls     uint64 // invocations started
	Failures  uint64 // invocations that returned an error (any cause)
	Faults    uint64 // traps, deadline hits and ABI breaks: instance replaced
	Busy      uint64 // refused with ErrBusy
	Instances uint64 // instances created
	Yields    uint64 // times the meter gave the core to others (meter.go)
	// Given is the wall time calls spent in those yields, while whatever
	// else was runnable ran: part of a call's time that was not its own.
	Given  time.Duration
	Idle   int // instances idle in the pool now
	Denied map[string]uint64
}

// version is one loaded module of an actor.
type version struct {
	rt     *Runtime
	name   string
	cid    cid.Cid
	grants []string
	limits Limits
	engine string
	// metered: the module runs with the meter's checks (meter.go). Always,
	// but for the benchmarks' unmetered baseline (internal/meteroff).
	metered bool
	meter   meterState

	wr       wazero.Runtime
	compiled wazero.CompiledModule
	// nat is the translated module of a version run natively (native.go),
	// natFuncs the host functions of its imports; wr and compiled are
	// then nil.
	nat      *native.Actor
	natFuncs []hostFn
	// module is the verified bytes of cid, kept so that the same module
	// can serve again under other grants or limits without asking the
	// box (Runtime.Module).
	module []byte
	tag    uint64
	inits  []string // initializer exports to run on each new instance
	// rec watches the initializers in PrepareNative's run (preinit.go).
	rec *initRecord

	slots chan struct{}  // one token per allowed concurrent call
	idle  chan *instance // warm instances

	mu      sync.Mutex
	refs    int
	retired bool
	closed  bool

	calls, failures, faults, busy, instances atomic.Uint64
	deniedMu                                 sync.Mutex
	denied                                   map[string]uint64
}

// instance is one module instance with its own linear memory.
type instance struct {
	mod       api.Module
	guestCall api.Function
	nat       *nativeInstance // natively: mod and guestCall are nil
	wasi      *wasiState
}

// close discards the instance.
func (in *instance) close() {
	if in.mod != nil {
		in.mod.Close(context.Background())
	}
}

func (r *Runtime) newVersion(ctx context.Context, spec Spec) (*version, error) {
	if !validName(spec.Name) {
		return nil, fmt.Errorf("%w: actor name %q", ErrInvalidModule, spec.Name)
	}
	lim, err := spec.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if a := r.nativeFor(spec, lim); a != nil {
		return r.newNativeVersion(ctx, spec, lim, a)
	}
	if err := verifyModule(spec.CID, spec.Module); err != nil {
		return nil, err
	}
	module, err := precheck(spec.Module)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	// The meter rewrites what wazero compiles; the CID stays that of the
	// bytes the manifest names, and the rewrite is a function of them.
	metered := !meteroff.Off(ctx)
	if metered {
		if module, err = meter(module); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
	}
	if spec.preinit != nil {
		if module, err = exportGlobals(module, spec.preinit.globals); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
	}
	rc, err := r.runtimeConfig()
	if err != nil {
		return nil, err
	}
	engine := "interpreter"
	if r.cfg.Engine == EngineCompiler || r.cfg.Engine == EngineAuto && compilerSupported() {
		engine = "compiler"
	}
	// No deadline watcher: the meter's yield ends a call past its deadline
	// (meter.go; RATIONALE.md, "Metering"), where wazero's watcher, a
	// goroutine, cannot run on the stick's one core.
	rc = rc.WithMemoryLimitPages(lim.MemoryPages).
		WithCloseOnContextDone(!metered).
		WithDebugInfoEnabled(false).
		WithCoreFeatures(api.CoreFeaturesV2)
	v := r.versionShell(spec, lim, engine, metered)
	v.rec = spec.preinit
	v.wr = wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*version, error) {
		v.wr.Close(context.Background())
		return nil, err
	}
	v.compiled, err = v.wr.CompileModule(ctx, module)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrInvalidModule, err))
	}
	if err := v.checkShape(); err != nil {
		return fail(err)
	}
	if err := v.instantiateHost(ctx); err != nil {
		return fail(err)
	}
	// Start one instance now: a module whose initializers fail never
	// serves, and the first call does not pay for it.
	in, err := v.newInstance(ctx)
	if err != nil {
		if !errors.Is(err, ErrInvalidModule) {
			err = fmt.Errorf("%w: %w", ErrInvalidModule, err)
		}
		return fail(err)
	}
	v.idle <- in
	return v, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// versionShell is a version with its pool and counters, no code yet.
func (r *Runtime) versionShell(spec Spec, lim Limits, engine string, metered bool) *version {
	v := &version{
		rt:      r,
		name:    spec.Name,
		cid:     spec.CID,
		grants:  slices.Clone(spec.Grants),
		limits:  lim,
		module:  spec.Module,
		tag:     spec.Tag,
		engine:  engine,
		metered: metered,
		slots:   make(chan struct{}, lim.MaxConcurrent),
		idle:    make(chan *instance, lim.MaxConcurrent),
		denied:  map[string]uint64{},
	}
	v.meter.slice.Store(meterFirstSlice(engine))
	for range lim.MaxConcurrent {
		v.slots <- struct{}{}
	}
	return v
}

// checkShape refuses modules that cannot be waPC actors here, with an error
// naming what is wrong.
func (v *version) checkShape() error {
	exp := v.compiled.ExportedFunctions()
	gc, ok := exp["__guest_call"]
	if !ok {
		return fmt.Errorf("%w: no __guest_call export (not a waPC actor)", ErrInvalidModule)
	}
	if !slices.Equal(gc.ParamTypes(), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}) ||
		!slices.Equal(gc.ResultTypes(), []api.ValueType{api.ValueTypeI32}) {
		return fmt.Errorf("%w: __guest_call must be (i32, i32) -> i32", ErrInvalidModule)
	}
	if _, ok := v.compiled.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: no memory exported as \"memory\"", ErrInvalidModule)
	}
	if len(v.compiled.ImportedMemories()) > 0 {
		return fmt.Errorf("%w: imports a memory; an actor owns its memory", ErrInvalidModule)
	}
	for _, name := range []string{"_initialize", "_start", "wapc_init"} {
		if d, ok := exp[name]; ok {
			if len(d.ParamTypes()) != 0 || len(d.ResultTypes()) != 0 {
				return fmt.Errorf("%w: %s must take and return nothing", ErrInvalidModule, name)
			}
			v.inits = append(v.inits, name)
		}
	}
	for _, d := range v.compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		switch mod {
		case wapcModule:
			if _, ok := wapcFuncs[name]; !ok {
				return fmt.Errorf("%w: imports %s.%s, which waPC does not define", ErrInvalidModule, mod, name)
			}
		case wasiModule:
			// Every WASI preview 1 import links: those teastick does not
			// provide answer ENOSYS (wasi.go).
		case meterModule:
			// The meter's own import (meter refuses an actor's).
			if !v.metered || name != meterYield {
				return fmt.Errorf("%w: imports %s.%s, reserved for the runtime", ErrInvalidModule, mod, name)
			}
		default:
			return fmt.Errorf("%w: imports %s.%s; actors may import only %q and %q", ErrInvalidModule, mod, name, wapcModule, wasiModule)
		}
	}
	return nil
}

func (v *version) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{wasi: newWASIState(v)}
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	// Initializers run metered under a deadline like any call, but a
	// longer one: on the stick they share the one core fairly with every
	// call in flight (the meter yields), so their wall-clock time grows
	// with the load, and a pool refilled under load must not fail for it.
	ctx, cancel := context.WithTimeout(ctx, max(v.limits.Timeout, v.rt.cfg.InitTimeout))
	defer cancel()
	// Initializers run without capabilities (callState.granted): they
	// answer no request, and the first instance's run before the core
	// measures the actor (ABI.md, "Initializers").
	cs := &callState{v: v, in: in, init: true}
	ctx = withCall(ctx, cs)
	if v.nat != nil {
		return v.newNativeInstanceRun(ctx, cs, in)
	}
	mod, err := v.wr.InstantiateModule(ctx, v.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: instantiate: %v", ErrInvalidModule, err)
	}
	in.mod = mod
	in.guestCall = mod.ExportedFunction("__guest_call")
	for _, name := range v.inits {
		if _, err := mod.ExportedFunction(name).Call(ctx); err != nil {
			mod.Close(context.Background())
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

// hold and release count calls using the version; a retired version closes
// when the last one releases it.
func (v *version) hold() {
	v.mu.Lock()
	v.refs++
	v.mu.Unlock()
}

func (v *version) release() {
	v.mu.Lock()
	v.refs--
	done := v.retired && v.refs == 0 && !v.closed
	if done {
		v.closed = true
	}
	v.mu.Unlock()
	if done {
		v.close()
	}
}

// retire stops the version taking new calls and closes it once idle.
func (v *version) retire() {
	v.mu.Lock()
	v.retired = true
	done := v.refs == 0 && !v.closed
	if done {
		v.closed = true
	}
	v.mu.Unlock()
	if done {
		v.close()
	}
}

func (v *version) close() {
	// Closing the wazero runtime closes every instance and compiled
	// module; a native version's instances are garbage once dropped.
	if v.wr != nil {
		v.wr.Close(context.Background())
	}
	for {
		select {
		case <-v.idle:
		default:
			return
		}
	}
}

func (v *version) info() Info {
	return Info{
		Name:   v.name,
		CID:    v.cid,
		Grants: slices.Clone(v.grants),
		Limits: v.limits,
		Engine: v.engine,
		Stats:  v.stats(),
	}
}

func (v *version) stats() Stats {
	v.deniedMu.Lock()
	d := make(map[string]uint64, len(v.denied))
	for k, n := range v.denied {
		d[k] = n
	}
	v.deniedMu.Unlock()
	return Stats{
		Calls:     v.calls.Load(),
		Failures:  v.failures.Load(),
		Faults:    v.faults.Load(),
		Busy:      v.busy.Load(),
		Instances: v.instances.Load(),
		Yields:    v.meter.yields.Load(),
		Given:     time.Duration(v.meter.given.Load()),
		Idle:      len(v.idle),
		Denied:    d,
	}
}

// granted reports whether the actor may call namespace.operation: a grant
// of the namespace covers all its operations, a grant "ns.op" one of them.
func (v *version) granted(namespace, operation string) bool {
	for _, g := range v.grants {
		if g == namespace {
			return true
		}
		if len(g) == len(namespace)+1+len(operation) && strings.HasPrefix(g, namespace) &&
			g[len(namespace)] == '.' && strings.HasSuffix(g, operation) {
			return true
		}
	}
	return false
}

// deny counts and logs a refused capability call at level; init says it
// was refused because an initializer made it. The first refusal of each
// capability is logged, then every 1000th, so a looping actor cannot
// flood the log.
func (v *version) deny(what string, init bool, level slog.Level) {
	v.deniedMu.Lock()
	v.denied[what]++
	n := v.denied[what]
	v.deniedMu.Unlock()
	if n == 1 || n%1000 == 0 {
		msg := "capability not granted"
		if init {
			msg = "capability not granted to an initializer"
		}
		v.rt.log.Log(context.Background(), level, msg, "actor", v.name, "cid", v.cid.String(), "capability", what, "count", n)
	}
}

// invoke runs one call on a pooled instance.
func (v *version) invoke(ctx context.Context, operation string, payload []byte) (out []byte, err error) {
	v.calls.Add(1)
	defer func() {
		if err != nil {
			v.failures.Add(1)
		}
	}()
	if uint64(len(payload)) > uint64(v.limits.MaxRequest) {
		return nil, fmt.Errorf("%w: %d bytes, actor %s takes at most %d", ErrRequestTooLarge, len(payload), v.name, v.limits.MaxRequest)
	}
	if len(operation) == 0 || len(operation) > 256 {
		return nil, fmt.Errorf("%w: operation name of %d bytes", ErrRequestTooLarge, len(operation))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Wait for a slot, at most QueueWait.
	select {
	case <-v.slots:
	default:
		t := time.NewTimer(v.rt.cfg.QueueWait)
		select {
		case <-v.slots:
			t.Stop()
		case <-t.C:
			v.busy.Add(1)
			return nil, fmt.Errorf("%w: %s has %d calls in flight", ErrBusy, v.name, v.limits.MaxConcurrent)
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	defer func() { v.slots <- struct{}{} }()

	var in *instance
	select {
	case in = <-v.idle:
	default:
		if in, err = v.newInstance(ctx); err != nil {
			v.faults.Add(1)
			return nil, err
		}
	}
	out, fault, err := v.call(ctx, in, operation, payload)
	if fault {
		// A call its caller cancelled is no fault of the actor's, but
		// its instance stopped mid-call all the same.
		if !errors.Is(err, context.Canceled) {
			v.faults.Add(1)
		}
		in.close()
		return nil, err
	}
	v.idle <- in
	return out, err
}

// call runs __guest_call. fault reports that the instance must not be used
// again.
func (v *version) call(ctx context.Context, in *instance, operation string, payload []byte) (out []byte, fault bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, v.limits.Timeout)
	defer cancel()
	cs := &callState{v: v, in: in, op: operation, req: payload}
	ctx = withCall(ctx, cs)
	var res uint64
	if in.nat != nil {
		err = in.nat.run(ctx, cs, func(i native.Instance) {
			res = uint64(uint32(i.GuestCall(int32(len(operation)), int32(len(payload)))))
		})
	} else {
		var rs []uint64
		if rs, err = in.guestCall.Call(ctx, uint64(len(operation)), uint64(len(payload))); err == nil {
			res = rs[0]
		}
	}
	in.wasi.flush()
	if err != nil {
		var ee *sys.ExitError
		switch {
		case cs.abiErr != nil:
			return nil, true, fmt.Errorf("%w: %s: %w", ErrTrap, v.name, cs.abiErr)
		case errors.As(err, &ee) && ee.ExitCode() == sys.ExitCodeDeadlineExceeded:
			return nil, true, fmt.Errorf("%w: %s ran past %v", ErrDeadline, v.name, v.limits.Timeout)
		case errors.As(err, &ee) && ee.ExitCode() == sys.ExitCodeContextCanceled:
			return nil, true, fmt.Errorf("%s: call canceled: %w", v.name, context.Canceled)
		case errors.As(err, &ee):
			return nil, true, fmt.Errorf("%w: %s exited with code %d", ErrTrap, v.name, ee.ExitCode())
		}
		return nil, true, fmt.Errorf("%w: %s: %v", ErrTrap, v.name, firstLine(err.Error()))
	}
	if cs.abiErr != nil {
		return nil, true, fmt.Errorf("%w: %s: %w", ErrTrap, v.name, cs.abiErr)
	}
	if res != 1 {
		msg := cs.guestErr
		if msg == "" {
			msg = fmt.Sprintf("operation %q failed", operation)
		}
		return nil, false, &ActorError{Actor: v.name, Message: msg}
	}
	if cs.resp == nil {
		return []byte{}, false, nil
	}
	return cs.resp, false, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
