package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// The waPC host module (ABI.md).
const wapcModule = "wapc"

var i32 = api.ValueTypeI32

// guestMem is what host functions see of an instance's linear memory:
// wazero's api.Memory in the interpreter, the slice of a translated
// module natively (native.go). One copy of each host function serves
// both engines.
type guestMem interface {
	Size() uint32
	Read(offset, byteCount uint32) ([]byte, bool)
	Write(offset uint32, v []byte) bool
	WriteUint32Le(offset, v uint32) bool
	WriteUint64Le(offset uint32, v uint64) bool
}

type hostFunc struct {
	params, results []api.ValueType
	fn              func(ctx context.Context, cs *callState, m guestMem, stack []uint64)
}

var wapcFuncs = map[string]hostFunc{
	"__guest_request":     {[]api.ValueType{i32, i32}, nil, guestRequest},
	"__guest_response":    {[]api.ValueType{i32, i32}, nil, guestResponse},
	"__guest_error":       {[]api.ValueType{i32, i32}, nil, guestError},
	"__host_call":         {[]api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}, hostCall},
	"__host_response_len": {nil, []api.ValueType{i32}, hostResponseLen},
	"__host_response":     {[]api.ValueType{i32}, nil, hostResponse},
	"__host_error_len":    {nil, []api.ValueType{i32}, hostErrorLen},
	"__host_error":        {[]api.ValueType{i32}, nil, hostError},
	"__console_log":       {[]api.ValueType{i32, i32}, nil, consoleLog},
}

// callState is what the host functions of one instance see during one
// call (or during its initializers, with no operation).
type callState struct {
	v   *version
	in  *instance
	op  string
	req []byte
	// init marks an instance's initializers: they run without
	// capabilities (ABI.md, "Initializers"; RATIONALE.md, "Initializers
	// run without capabilities").
	init bool

	resp     []byte
	guestErr string
	hostResp []byte
	hostErr  string
	// abiErr is set when the guest broke the ABI; the call traps and the
	// instance is replaced.
	abiErr error

	// The meter's calibration (meter.go): when the last yield of this
	// call returned and the slice it granted.
	lastYield time.Time
	lastSlice int64
}

type callKey struct{}

// granted reports whether the guest may use namespace.operation now: as
// the actor's grants say during a call, never in an initializer.
func (cs *callState) granted(namespace, operation string) bool {
	return !cs.init && cs.v.granted(namespace, operation)
}

// deny counts and logs a refused capability, and reports whether only
// the initializer rule refused it (the actor holds the grant).
func (cs *callState) deny(namespace, operation string) bool {
	init := cs.init && cs.v.granted(namespace, operation)
	cs.v.deny(namespace+"."+operation, init, slog.LevelWarn)
	return init
}

func withCall(ctx context.Context, cs *callState) context.Context {
	return context.WithValue(ctx, callKey{}, cs)
}

// errABI marks guest ABI violations.
var errABI = errors.New("waPC ABI violation")

// abort records an ABI violation and unwinds the guest (wazero turns the
// panic into the call's error).
func (cs *callState) abort(format string, args ...any) {
	cs.abiErr = fmt.Errorf("%w: "+format, append([]any{errABI}, args...)...)
	panic(cs.abiErr)
}

// read returns a view of guest memory; it is valid until the guest runs
// again.
func (cs *callState) read(m guestMem, what string, ptr, n uint64) []byte {
	b, ok := m.Read(uint32(ptr), uint32(n))
	if !ok {
		cs.abort("%s: %d bytes at %#x outside memory of %d bytes", what, uint32(n), uint32(ptr), m.Size())
	}
	return b
}

func (cs *callState) write(m guestMem, what string, ptr uint64, b []byte) {
	if !m.Write(uint32(ptr), b) {
		cs.abort("%s: %d bytes at %#x outside memory of %d bytes", what, len(b), uint32(ptr), m.Size())
	}
}

func (v *version) instantiateHost(ctx context.Context) error {
	b := v.wr.NewHostModuleBuilder(wapcModule)
	for name, f := range wapcFuncs {
		f := f
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			cs, _ := ctx.Value(callKey{}).(*callState)
			if cs == nil {
				panic(fmt.Errorf("%w: host function called outside a call", errABI))
			}
			v.noteInit(cs, wapcModule, name)
			f.fn(ctx, cs, m.Memory(), stack)
		}), f.params, f.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("%w: waPC host module: %v", ErrInvalidModule, err)
	}
	if v.metered {
		if err := v.instantiateMeter(ctx); err != nil {
			return err
		}
	}
	return v.instantiateWASI(ctx)
}

func guestRequest(_ context.Context, cs *callState, m guestMem, stack []uint64) {
	if cs.op == "" {
		cs.abort("__guest_request outside __guest_call")
	}
	cs.write(m, "__guest_request operation", stack[0], []byte(cs.op))
	cs.write(m, "__guest_request payload", stack[1], cs.req)
}

func guestResponse(_ context.Context, cs *callState, m guestMem, stack []uint64) {
	n := uint32(stack[1])
	if n > cs.v.limits.MaxResponse {
		cs.abiErr = fmt.Errorf("%w: %d bytes, actor %s may answer at most %d", ErrResponseTooLarge, n, cs.v.name, cs.v.limits.MaxResponse)
		panic(cs.abiErr)
	}
	cs.resp = append([]byte(nil), cs.read(m, "__guest_response", stack[0], stack[1])...)
}

func guestError(_ context.Context, cs *callState, m guestMem, stack []uint64) {
	n := min(uint32(stack[1]), 4096) // an error message, not a payload
	cs.guestErr = string(cs.read(m, "__guest_error", stack[0], uint64(n)))
}

func hostCall(ctx context.Context, cs *callState, m guestMem, stack []uint64) {
	const maxName = 256
	for i := 1; i < 6; i += 2 {
		if uint32(stack[i]) > maxName {
			cs.abort("__host_call: name of %d bytes", uint32(stack[i]))
		}
	}
	binding := string(cs.read(m, "__host_call binding", stack[0], stack[1]))
	ns := string(cs.read(m, "__host_call namespace", stack[2], stack[3]))
	op := string(cs.read(m, "__host_call operation", stack[4], stack[5]))
	payload := cs.read(m, "__host_call payload", stack[6], stack[7])
	cs.hostResp, cs.hostErr = nil, ""
	resp, err := cs.v.dispatch(ctx, cs, binding, ns, op, payload)
	if err != nil {
		cs.hostErr = err.Error()
		stack[0] = 0
		return
	}
	cs.hostResp = resp
	stack[0] = 1
}

func hostResponseLen(_ context.Context, cs *callState, _ guestMem, stack []uint64) {
	stack[0] = uint64(uint32(len(cs.hostResp)))
}

func hostResponse(_ context.Context, cs *callState, m guestMem, stack []uint64) {
	cs.write(m, "__host_response", stack[0], cs.hostResp)
}

func hostErrorLen(_ context.Context, cs *callState, _ guestMem, stack []uint64) {
	stack[0] = uint64(uint32(len(cs.hostErr)))
}

func hostError(_ context.Context, cs *callState, m guestMem, stack []uint64) {
	cs.write(m, "__host_error", stack[0], []byte(cs.hostErr))
}

// consoleLog is waPC's logging call; it needs the log grant like stdout.
func consoleLog(_ context.Context, cs *callState, m guestMem, stack []uint64) {
	if !cs.granted("log", "write") {
		cs.deny("log", "write")
		return
	}
	n := min(uint32(stack[1]), maxLogLine)
	cs.v.logLine("console", cs.read(m, "__console_log", stack[0], uint64(n)))
}
