package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// WASI preview 1, only as granted, and in initializers as if nothing but
// random were granted (ABI.md, "Initializers"). Actors get no filesystem,
// environment or arguments. stdout and stderr go to the log under the
// actor's name (grant "log"). clock_time_get reads the real clocks with the
// grant "clock"; without it the actor sees a virtual clock that starts at
// zero and moves only as the actor reads it or sleeps, because language
// runtimes (Go's among them) cannot start without a clock, and an actor
// that sees no real time computes the same result every time. random_get
// needs the grant "random"; without it, it fails with ENOTCAPABLE (Go's
// runtime then seeds itself from the virtual clock). Every other WASI
// function an actor imports links, and answers ENOSYS.
const wasiModule = "wasi_snapshot_preview1"

// WASI errno values.
const (
	errnoSuccess     = 0
	errnoBadf        = 8
	errnoFault       = 21
	errnoInval       = 28
	errnoNosys       = 52
	errnoNotcapable  = 76
	maxLogLine       = 1024
	maxLogPerCall    = 64 << 10
	virtualClockStep = 1000 // ns a virtual clock read advances
)

// wasiState is one instance's WASI state.
type wasiState struct {
	v       *version
	virtual uint64 // virtual clock, ns
	line    map[int32]*bytes.Buffer
	logged  int // bytes logged in this call
}

func newWASIState(v *version) *wasiState {
	return &wasiState{v: v, line: map[int32]*bytes.Buffer{}}
}

func streamName(fd int32) string {
	if fd == 2 {
		return "stderr"
	}
	return "stdout"
}

// output buffers fd_write data into lines. Its work is linear in b: a
// newline is searched for only within the room left in the line, and once
// the call has logged maxLogPerCall bytes the rest is counted, not scanned.
func (w *wasiState) output(fd int32, b []byte) {
	if w.logged >= maxLogPerCall {
		w.logged += len(b)
		return
	}
	buf := w.line[fd]
	if buf == nil {
		buf = &bytes.Buffer{}
		w.line[fd] = buf
	}
	for len(b) > 0 {
		if w.logged >= maxLogPerCall {
			w.logged += len(b)
			return
		}
		room := maxLogLine - buf.Len()
		i := bytes.IndexByte(b[:min(len(b), room)], '\n')
		if i < 0 {
			if len(b) < room {
				buf.Write(b)
				return
			}
			buf.Write(b[:room])
			b = b[room:]
		} else {
			buf.Write(b[:i])
			b = b[i+1:]
			w.logged++ // the newline: empty lines count too
		}
		w.emit(fd, buf)
	}
}

func (w *wasiState) emit(fd int32, buf *bytes.Buffer) {
	if w.logged < maxLogPerCall {
		w.v.logLine(streamName(fd), buf.Bytes())
	}
	w.logged += buf.Len()
	buf.Reset()
}

// flush logs partial lines at the end of a call.
func (w *wasiState) flush() {
	for fd, buf := range w.line {
		if buf.Len() > 0 {
			w.emit(fd, buf)
		}
	}
	if w.logged > maxLogPerCall {
		w.v.rt.log.Warn("actor output truncated", "actor", w.v.name, "bytes", w.logged, "limit", maxLogPerCall)
	}
	w.logged = 0
}

func (v *version) logLine(stream string, b []byte) {
	v.rt.log.Info("actor", "actor", v.name, "stream", stream, "msg", string(b))
}

var i64 = api.ValueTypeI64

var wasiFuncs = map[string]hostFunc{
	"args_get":          {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiEmptyList},
	"args_sizes_get":    {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiEmptySizes},
	"environ_get":       {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiEmptyList},
	"environ_sizes_get": {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiEmptySizes},
	"clock_res_get":     {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiClockRes},
	"clock_time_get":    {[]api.ValueType{i32, i64, i32}, []api.ValueType{i32}, wasiClockTime},
	"fd_write":          {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, wasiFdWrite},
	"fd_fdstat_get":     {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiFdstat},
	"fd_prestat_get":    {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiBadf},
	"fd_close":          {[]api.ValueType{i32}, []api.ValueType{i32}, wasiBadf},
	"poll_oneoff":       {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, wasiPoll},
	"proc_exit":         {[]api.ValueType{i32}, nil, wasiExit},
	"random_get":        {[]api.ValueType{i32, i32}, []api.ValueType{i32}, wasiRandom},
	"sched_yield":       {nil, []api.ValueType{i32}, func(_ context.Context, _ *callState, _ guestMem, s []uint64) { s[0] = errnoSuccess }},
}

// instantiateWASI builds the WASI host module for exactly the functions the
// actor imports.
func (v *version) instantiateWASI(ctx context.Context) error {
	b := v.wr.NewHostModuleBuilder(wasiModule)
	seen := map[string]bool{}
	for _, d := range v.compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		if mod != wasiModule || seen[name] {
			continue
		}
		seen[name] = true
		f, ok := wasiFuncs[name]
		if !ok {
			if len(d.ResultTypes()) != 1 || d.ResultTypes()[0] != i32 {
				return fmt.Errorf("%w: imports %s.%s with a signature WASI preview 1 does not have", ErrInvalidModule, mod, name)
			}
			f = hostFunc{d.ParamTypes(), d.ResultTypes(), func(_ context.Context, _ *callState, _ guestMem, s []uint64) { s[0] = errnoNosys }}
		}
		fn := f.fn
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			cs, _ := ctx.Value(callKey{}).(*callState)
			if cs == nil {
				panic(fmt.Errorf("%w: WASI called outside a call", errABI))
			}
			v.noteInit(cs, wasiModule, name)
			fn(ctx, cs, m.Memory(), stack)
		}), f.params, f.results).Export(name)
	}
	if len(seen) == 0 {
		return nil
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("%w: WASI host module: %v", ErrInvalidModule, err)
	}
	return nil
}

func wasiBadf(_ context.Context, _ *callState, _ guestMem, s []uint64) { s[0] = errnoBadf }

func wasiEmptyList(_ context.Context, _ *callState, _ guestMem, s []uint64) { s[0] = errnoSuccess }

func wasiEmptySizes(_ context.Context, cs *callState, m guestMem, s []uint64) {
	if !m.WriteUint32Le(uint32(s[0]), 0) || !m.WriteUint32Le(uint32(s[1]), 0) {
		s[0] = errnoFault
		return
	}
	s[0] = errnoSuccess
}

func wasiClockRes(_ context.Context, cs *callState, m guestMem, s []uint64) {
	if uint32(s[0]) > 3 {
		s[0] = errnoInval
		return
	}
	res := uint64(1)
	if !cs.granted("clock", "now") {
		res = virtualClockStep
	}
	if !m.WriteUint64Le(uint32(s[1]), res) {
		s[0] = errnoFault
		return
	}
	s[0] = errnoSuccess
}

// now returns the clock the actor sees: clock id 0 is real time, the others
// monotonic. Initializers see the virtual clock even with the grant; the
// real monotonic clock then continues above where it left off, so the
// instance never sees it go back.
func (cs *callState) now(id uint32) uint64 {
	w := cs.in.wasi
	if cs.granted("clock", "now") {
		if id == 0 {
			return uint64(cs.v.rt.cfg.Now().UnixNano())
		}
		return max(uint64(time.Since(cs.v.rt.start))+1, w.virtual+1)
	}
	w.virtual += virtualClockStep
	return w.virtual
}

func wasiClockTime(_ context.Context, cs *callState, m guestMem, s []uint64) {
	id := uint32(s[0])
	if id > 3 {
		s[0] = errnoInval
		return
	}
	if !m.WriteUint64Le(uint32(s[2]), cs.now(id)) {
		s[0] = errnoFault
		return
	}
	s[0] = errnoSuccess
}

// maxIovecs bounds the iovecs of one fd_write: IOV_MAX of wasi-libc
// (libc-top-half/musl/include/limits.h) and of Linux, so no libc asks for
// more; above it fd_write fails with EINVAL, as writev(2) does.
const maxIovecs = 1024

// wasiFdWrite logs the iovecs (WASI preview 1 fd_write). Its work is
// linear in the number of iovecs plus the bytes logged (bounded per call),
// whatever their lengths, and it stops when the call's deadline passes.
func wasiFdWrite(ctx context.Context, cs *callState, m guestMem, s []uint64) {
	fd, iovs, n, nwritten := int32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3])
	if fd != 1 && fd != 2 {
		s[0] = errnoBadf
		return
	}
	if !cs.granted("log", "write") {
		cs.deny("log", "write")
		s[0] = errnoNotcapable
		return
	}
	if n > maxIovecs {
		s[0] = errnoInval
		return
	}
	mem := m
	vec, ok := mem.Read(iovs, 8*n)
	if !ok {
		s[0] = errnoFault
		return
	}
	// Check every iovec and the total before writing any of them: the
	// result is all or nothing, and the total must fit the u32 size.
	var total uint64
	for i := range n {
		ptr, l := binary.LittleEndian.Uint32(vec[8*i:]), binary.LittleEndian.Uint32(vec[8*i+4:])
		if _, ok := mem.Read(ptr, l); !ok {
			s[0] = errnoFault
			return
		}
		total += uint64(l)
	}
	if total > 1<<32-1 {
		s[0] = errnoInval
		return
	}
	for i := range n {
		exitIfDone(ctx)
		ptr, l := binary.LittleEndian.Uint32(vec[8*i:]), binary.LittleEndian.Uint32(vec[8*i+4:])
		b, _ := mem.Read(ptr, l)
		cs.in.wasi.output(fd, b)
	}
	if !mem.WriteUint32Le(nwritten, uint32(total)) {
		s[0] = errnoFault
		return
	}
	s[0] = errnoSuccess
}

// exitIfDone ends the call when its deadline has passed or it was
// canceled, from inside a host function, as wazero ends a running loop
// (the call then fails with ErrDeadline or context.Canceled).
func exitIfDone(ctx context.Context) {
	if err := ctx.Err(); err != nil {
		code := sys.ExitCodeContextCanceled
		if errors.Is(err, context.DeadlineExceeded) {
			code = sys.ExitCodeDeadlineExceeded
		}
		panic(sys.NewExitError(code))
	}
}

func wasiFdstat(_ context.Context, _ *callState, m guestMem, s []uint64) {
	fd := int32(s[0])
	if fd < 0 || fd > 2 {
		s[0] = errnoBadf
		return
	}
	var st [24]byte
	st[0] = 2                // character device
	rights := uint64(1 << 6) // fd_write
	if fd == 0 {
		rights = 1 << 1 // fd_read
	}
	binary.LittleEndian.PutUint64(st[8:], rights)
	if !m.Write(uint32(s[1]), st[:]) {
		s[0] = errnoFault
		return
	}
	s[0] = errnoSuccess
}

// wasiPoll serves clock subscriptions (sleeps): a granted clock really
// sleeps, bounded by the call's deadline; a virtual clock jumps ahead.
// Subscriptions on file descriptors complete at once with EBADF.
func wasiPoll(ctx context.Context, cs *callState, m guestMem, s []uint64) {
	in, out, n, neventsPtr := uint32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3])
	if n == 0 || n > 64 {
		s[0] = errnoInval
		return
	}
	mem := m
	subs, ok := mem.Read(in, 48*n)
	if !ok {
		s[0] = errnoFault
		return
	}
	if _, ok := mem.Read(out, 32*n); !ok {
		s[0] = errnoFault
		return
	}
	// The earliest clock deadline, as a relative wait.
	var wait uint64 = 1<<64 - 1
	var fdEvents []uint32
	for i := range n {
		sub := subs[48*i:]
		switch sub[8] {
		case 0: // clock
			id := binary.LittleEndian.Uint32(sub[16:])
			timeout := binary.LittleEndian.Uint64(sub[24:])
			if binary.LittleEndian.Uint16(sub[40:])&1 != 0 { // absolute
				if now := cs.peekNow(id); timeout > now {
					timeout -= now
				} else {
					timeout = 0
				}
			}
			wait = min(wait, timeout)
		default:
			fdEvents = append(fdEvents, i)
		}
	}
	if len(fdEvents) == 0 && wait != 1<<64-1 {
		if cs.granted("clock", "now") {
			t := time.NewTimer(time.Duration(min(wait, uint64(time.Hour))))
			select {
			case <-t.C:
			case <-ctx.Done():
				// The call's deadline or cancellation ends the sleep and
				// the call, as wazero ends a running loop.
				t.Stop()
				exitIfDone(ctx)
			}
		} else {
			cs.in.wasi.virtual += wait
		}
	}
	var nevents uint32
	for i := range n {
		sub := subs[48*i:]
		var ev [32]byte
		copy(ev[0:8], sub[0:8]) // userdata
		ev[10] = sub[8]         // type
		if sub[8] != 0 {
			binary.LittleEndian.PutUint16(ev[8:], errnoBadf)
		} else if len(fdEvents) > 0 {
			continue // fd events answer first; clocks have not fired
		}
		mem.Write(out+32*nevents, ev[:])
		nevents++
	}
	if !mem.WriteUint32Le(neventsPtr, nevents) {
		s[0] = errnoFault
		return
	}
	s[0] = errnoSuccess
}

// peekNow reads the actor's clock without advancing a virtual one.
func (cs *callState) peekNow(id uint32) uint64 {
	if cs.granted("clock", "now") {
		return cs.now(id)
	}
	return cs.in.wasi.virtual
}

// wasiExit ends the call with the exit code; the runtime then replaces
// the instance, as after any fault.
func wasiExit(_ context.Context, _ *callState, _ guestMem, s []uint64) {
	panic(sys.NewExitError(uint32(s[0])))
}

// wasiRandom fills the buffer from the runtime's generator if the actor
// holds the grant random, in a call or in an initializer alike: random
// bytes reach no box, key or state, and language runtimes seed their hash
// tables from them at start (RATIONALE.md, "Initializers run without
// capabilities"). Without the grant it refuses, counts the refusal and
// logs it at debug level only: Go's wasip1 runtime (and others) asks at
// start whatever the actor does, which is nothing an operator acts on
// (RATIONALE.md, "The console is quiet by default").
func wasiRandom(_ context.Context, cs *callState, m guestMem, s []uint64) {
	if !cs.v.granted("random", "bytes") {
		cs.v.deny("random.bytes", false, slog.LevelDebug)
		s[0] = errnoNotcapable
		return
	}
	buf, ok := m.Read(uint32(s[0]), uint32(s[1]))
	if !ok {
		s[0] = errnoFault
		return
	}
	if _, err := io.ReadFull(cs.v.rt.cfg.Rand, buf); err != nil {
		s[0] = errnoNosys
		return
	}
	s[0] = errnoSuccess
}
