// Package benchmode measures the actor runtime where it runs: on the stick
// (the console's bench command, wazero's interpreter on 32-bit ARM) or on a
// host. It is the runtime's host benchmarks (runtime/bench_test.go,
// runtime/bench_internal_test.go) cut to what fits one run on an emulated
// Cortex-A7, every ratio measured in that one run, alternating its two
// sides. Each figure is one line, stable for grep; these are from runs on
// the stick under QEMU (the kernel's two lines from a later run, with the
// meter, on a host loaded by other work, which stretches every time; the
// cold start's from a later format, which times it twice, and "bench
// native", whose built-in actors load without bytes; the second meter line
// from "bench native" at a later format, which adds the time the yields
// gave to the rest of the stick):
//
//	bench: runtime interpreter on tamago/arm
//	bench: empty-invoke edge 112 us/op (n=200)
//	bench: empty-invoke echo 335 us/op (n=200)
//	bench: kernel native 1.12 ms actor 2167 ms ratio 1940x unmetered 1915 ms ratio 1714x meter 13.2% (n=32 rounds=2 runs=3)
//	bench: meter yields every 3.23 ms of the kernel (672 yields a run)
//	bench: meter yields every 0.888 ms of the kernel (11.0 yields a run, 0.595 ms a run given to the rest of the stick: ratio 15.6x without it)
//	bench: sha256-1MiB native 32.7 ms capability 34.9 ms ratio 1.07x (runs=3)
//	bench: sha256-1MiB edge native 31.2 ms capability 34.1 ms ratio 1.09x (runs=3)
//	bench: cold-start echo 33 ms, again 20 ms (built in, native)
//	bench: idle-instance-heap echo 61.7 KiB beyond linear memory (n=4, linear 3048 KiB each)
//	bench: done in 26806 ms
//
// A figure that fails prints "bench: NAME FAILED: why"; the others still
// run.
package benchmode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/internal/kernel"
	"github.com/teastick/teastick/runtime/internal/meteroff"
)

// Module is one actor module and its CID.
type Module struct {
	// CID names Code; undefined, it is computed the way teactl publishes
	// actors (ipfs add --cid-version 1 --raw-leaves).
	CID  cid.Cid
	Code []byte
}

func (m Module) cid() cid.Cid {
	if m.CID.Defined() {
		return m.CID
	}
	c, _ := ipfs.Add(m.Code)
	return c
}

// Modules are the actors the figures need: the examples in
// runtime/examples built for GOOS=wasip1, and optionally the hand-written
// edge fixture (runtime/testdata/edge.wat), whose "nothing" operation
// prices the runtime's own call overhead without a Go guest's.
type Modules struct {
	Echo, Kernel, Notary, Wordcount Module
	Edge                            Module // optional
}

// Options size the run; zero fields take the defaults, sized for QEMU's
// emulated Cortex-A7 (an echo call takes ~2.4 ms there, a Go actor loads in
// ~2 s).
type Options struct {
	EmptyCalls    int // calls per empty-invoke figure (200)
	KernelN       int // matrix size (32)
	KernelRounds  int // products per run (2)
	KernelRuns    int // native and actor runs, alternated (3; 15 with Native)
	HashRuns      int // native and capability runs of SHA-256 of 1 MiB, alternated (3)
	IdleInstances int // extra idle instances the heap figure loads (4)
	// Native loads every actor asking for its native translation
	// (runtime.Spec.Native): the binary's, where it holds exactly the
	// CID under the same memory limit; else the interpreter. Each
	// figure names the engine its actor ran on. The kernel's unmetered
	// baseline stays in the interpreter.
	Native bool
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.EmptyCalls, 200)
	def(&o.KernelN, 32)
	def(&o.KernelRounds, 2)
	// A translated kernel's run is milliseconds on the stick, where three
	// runs' ratio spread from 14.5x to 18.8x over seven bench runs: with
	// Native, more alternations for about 5 s more (the unmetered
	// baseline is the interpreter's, about 0.45 s a run).
	if o.Native {
		def(&o.KernelRuns, 15)
	}
	def(&o.KernelRuns, 3)
	def(&o.HashRuns, 3)
	def(&o.IdleInstances, 4)
	return o
}

// Actor names the run loads into rt; it unloads them before returning.
const prefix = "bench-"

// Run measures every figure once with the default Options and prints one
// line per figure on w. It loads its actors into rt under names starting
// "bench-" and unloads them; give it a runtime of its own (its engine is
// the one measured). It returns the figures' errors, joined.
func Run(ctx context.Context, w io.Writer, rt *runtime.Runtime, mods Modules) error {
	return RunOptions(ctx, w, rt, mods, Options{})
}

// RunOptions is Run with the run's size.
func RunOptions(ctx context.Context, w io.Writer, rt *runtime.Runtime, mods Modules, o Options) error {
	o = o.withDefaults()
	start := time.Now()
	var errs []error
	fig := func(name string, f func() error) {
		err := ctx.Err()
		if err == nil {
			err = f()
		}
		if err != nil {
			fmt.Fprintf(w, "bench: %s FAILED: %v\n", name, err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	b := &bench{ctx: ctx, w: w, rt: rt, o: o}
	if len(mods.Edge.Code) > 0 {
		fig("empty-invoke edge", func() error { return b.emptyInvoke("edge", mods.Edge, "nothing") })
	}
	fig("empty-invoke echo", func() error { return b.emptyInvoke("echo", mods.Echo, "echo") })
	fig("kernel", func() error { return b.kernel(mods.Kernel) })
	fig("sha256-1MiB", func() error { return b.sha256(mods.Notary, "") })
	if len(mods.Edge.Code) > 0 {
		fig("sha256-1MiB edge", func() error { return b.sha256(mods.Edge, " edge") })
	}
	for _, m := range []struct {
		name string
		mod  Module
	}{{"echo", mods.Echo}, {"kernel", mods.Kernel}, {"notary", mods.Notary}, {"wordcount", mods.Wordcount}} {
		fig("cold-start "+m.name, func() error { return b.coldStart(m.name, m.mod) })
	}
	fig("idle-instance-heap echo", func() error { return b.idleHeap("echo", mods.Echo) })
	fmt.Fprintf(w, "bench: done in %d ms\n", time.Since(start).Milliseconds())
	return errors.Join(errs...)
}

type bench struct {
	ctx context.Context
	w   io.Writer
	rt  *runtime.Runtime
	o   Options

	engineShown bool // the runtime line, printed after the first load
}

// load loads m, the module called what, as prefix+name and returns a
// function that unloads it.
func (b *bench) load(name, what string, m Module, grants []string, lim runtime.Limits) (string, func(), error) {
	if len(m.Code) == 0 {
		return "", nil, fmt.Errorf("no %s module", what)
	}
	name = prefix + name
	spec := runtime.Spec{Name: name, CID: m.cid(), Grants: grants, Limits: lim, Module: m.Code, Native: b.o.Native}
	if b.rt.RunsNatively(spec) {
		// As the stick loads an actor its image holds: no bytes, so
		// no CID check of them (firmware/core's prepareOne).
		spec.Module = nil
	}
	if err := b.rt.Load(b.ctx, spec); err != nil {
		return "", nil, err
	}
	goruntime.Gosched() // see invoke
	if !b.engineShown {
		if in, err := b.rt.Actor(name); err == nil {
			b.engineShown = true
			fmt.Fprintf(b.w, "bench: runtime %s on %s/%s\n", in.Engine, goruntime.GOOS, goruntime.GOARCH)
		}
	}
	return name, func() { b.rt.Unload(name) }, nil
}

// engine is the engine actor runs on, for the figures' lines.
func (b *bench) engine(actor string) string {
	if in, err := b.rt.Actor(actor); err == nil {
		return in.Engine
	}
	return "unknown"
}

// invoke calls the actor, then yields. For the unmetered kernel (the
// meter's baseline) wazero ends each call's deadline watcher in a
// goroutine of its own, which holds the call's instance until it runs: on
// the stick's one core with no preemption, a loop of calls that never
// blocks would starve them all and keep every instance it ever used (out
// of memory within a run); yielding runs them, and charges them to the
// call that made them. Metered actors have no watcher and yield inside
// long calls by themselves.
func (b *bench) invoke(actor, op string, payload []byte) ([]byte, error) {
	out, err := b.rt.Invoke(b.ctx, actor, op, payload)
	goruntime.Gosched()
	return out, err
}

// emptyInvoke prices a call that does nothing: the runtime's pool,
// deadline and waPC request and response (and, for a Go guest, its
// dispatch).
func (b *bench) emptyInvoke(name string, m Module, op string) error {
	actor, unload, err := b.load("empty-"+name, name, m, nil, runtime.Limits{})
	if err != nil {
		return err
	}
	defer unload()
	// One call first: nothing the loop measures is paid once.
	if _, err := b.invoke(actor, op, nil); err != nil {
		return err
	}
	n := b.o.EmptyCalls
	start := time.Now()
	for range n {
		if _, err := b.invoke(actor, op, nil); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(b.w, "bench: empty-invoke %s %s us/op (n=%d, %s)\n", name, num(float64(el.Nanoseconds())/float64(n)/1e3), n, b.engine(actor))
	return nil
}

// ratio times its sides (native, then one or more actors) alternately,
// runs times each, and returns their totals. One untimed run of each
// comes first, in order, stopping at the first error: what a first call
// pays once (growing the guest's memory, the guest allocating its request
// buffer) is cold start, priced on its own, and with three runs it would
// otherwise be a third of the figure. Each timed run starts from a
// collected heap: on the stick's one core the collector works in whatever
// runs, and the actor's garbage would otherwise be charged to the native
// run after it.
func ratio(runs int, sides ...func() error) ([]time.Duration, error) {
	for _, f := range sides {
		if err := f(); err != nil {
			return nil, err
		}
	}
	d := make([]time.Duration, len(sides))
	for range runs {
		for i, f := range sides {
			goruntime.GC()
			start := time.Now()
			if err := f(); err != nil {
				return nil, err
			}
			d[i] += time.Since(start)
		}
	}
	return d, nil
}

func ms(d time.Duration, runs int) string {
	return num(float64(d.Nanoseconds()) / float64(runs) / 1e6)
}

// kernel runs the compute kernel (runtime/internal/kernel) as native Go,
// as the kernel actor (metered, as every actor runs) and as the same
// actor loaded without the meter (internal/meteroff: the benchmarks' own
// baseline, which no manifest can ask for), alternately in one run.
//
// The console's user names the kernel's module, so it could be anything;
// ratio's untimed round runs the metered side first, and the unmetered
// side only once that returned the native answer within the deadline.
// The same bytes on the same input, with no clock or random grant, are
// the same computation: the unmetered runs end too.
func (b *bench) kernel(m Module) error {
	actor, unload, err := b.load("kernel", "kernel", m, nil, runtime.Limits{Timeout: time.Minute})
	if err != nil {
		return err
	}
	defer unload()
	raw := prefix + "kernel-unmetered"
	if err := b.rt.Load(meteroff.Context(b.ctx), runtime.Spec{Name: raw, CID: m.cid(), Limits: runtime.Limits{Timeout: time.Minute}, Module: m.Code}); err != nil {
		return fmt.Errorf("unmetered: %w", err)
	}
	defer b.rt.Unload(raw)
	goruntime.Gosched() // see invoke
	n, rounds := b.o.KernelN, b.o.KernelRounds
	p := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(n)), uint32(rounds))
	want := kernel.Run(n, rounds)
	run := func(actor string) func() error {
		return func() error {
			out, err := b.invoke(actor, "run", p)
			if err != nil {
				return err
			}
			if len(out) != 8 || binary.BigEndian.Uint64(out) != want {
				return fmt.Errorf("actor kernel answered %x, native %x", out, want)
			}
			return nil
		}
	}
	var yields uint64
	var given time.Duration
	if in, err := b.rt.Actor(actor); err == nil {
		yields, given = in.Stats.Yields, in.Stats.Given
	}
	d, err := ratio(b.o.KernelRuns, func() error {
		if kernel.Run(n, rounds) != want {
			return errors.New("native kernel changed its answer")
		}
		return nil
	}, run(actor), run(raw))
	if err != nil {
		return err
	}
	tn, ta, tu := d[0], d[1], d[2]
	fmt.Fprintf(b.w, "bench: kernel native %s ms actor %s ms ratio %sx unmetered %s ms ratio %sx meter %s%% (n=%d rounds=%d runs=%d, actor %s, unmetered %s)\n",
		ms(tn, b.o.KernelRuns), ms(ta, b.o.KernelRuns), num(float64(ta)/float64(tn)),
		ms(tu, b.o.KernelRuns), num(float64(tu)/float64(tn)), num(100*(float64(ta)/float64(tu)-1)),
		n, rounds, b.o.KernelRuns, b.engine(actor), b.engine(raw))
	// The metered actor ran runs+1 times (one untimed); the timed runs'
	// yields are about runs/(runs+1) of those counted.
	// So is the time its yields gave to the rest of the stick (the
	// network's pump, timers): part of the actor's wall time that was
	// not its own, nor the meter's.
	if in, err := b.rt.Actor(actor); err == nil && in.Stats.Yields > yields {
		frac := float64(b.o.KernelRuns) / float64(b.o.KernelRuns+1)
		y := float64(in.Stats.Yields-yields) * frac
		g := float64((in.Stats.Given - given).Nanoseconds()) * frac
		fmt.Fprintf(b.w, "bench: meter yields every %s ms of the kernel (%s yields a run, %s ms a run given to the rest of the stick: ratio %sx without it)\n",
			num(float64(ta.Nanoseconds())/1e6/y), num(y/float64(b.o.KernelRuns)),
			num(g/1e6/float64(b.o.KernelRuns)), num((float64(ta.Nanoseconds())-g)/float64(tn.Nanoseconds())))
	}
	return nil
}

// sha256 hashes 1 MiB natively and through the crypto capability: with
// the notary's "hash" (a Go guest), or, for the edge fixture (guest
// " edge"), its "call" operation, which passes the payload straight to the
// capability: the capability's own cost without a Go runtime in the guest.
func (b *bench) sha256(m Module, guest string) error {
	name, op := "notary", "hash"
	if guest != "" {
		name, op = "edge", "call"
	}
	actor, unload, err := b.load(name, name, m, []string{"crypto.sha256"}, runtime.Limits{MaxRequest: 2 << 20, MemoryPages: 512, Timeout: time.Minute})
	if err != nil {
		return err
	}
	defer unload()
	data := bytes.Repeat([]byte("teastick"), 1<<17)
	want := sha256.Sum256(data)
	payload := data
	if guest != "" {
		payload = append([]byte("\x06crypto\x06sha256"), data...)
	}
	d, err := ratio(b.o.HashRuns, func() error {
		if sha256.Sum256(data) != want {
			return errors.New("bad native digest")
		}
		return nil
	}, func() error {
		out, err := b.invoke(actor, op, payload)
		if err != nil {
			return err
		}
		if !bytes.Equal(out, want[:]) {
			return fmt.Errorf("actor digest %x, want %x", out, want)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tn, ta := d[0], d[1]
	fmt.Fprintf(b.w, "bench: sha256-1MiB%s native %s ms capability %s ms ratio %sx (runs=%d, %s)\n",
		guest, ms(tn, b.o.HashRuns), ms(ta, b.o.HashRuns), num(float64(ta)/float64(tn)), b.o.HashRuns, b.engine(actor))
	return nil
}

// coldStart times CID check, compile, instantiate (the Go runtime's
// initialization included) and a first call, twice: an actor the binary
// holds natively is loaded as the stick loads it, with no bytes to check
// or compile ("built in"). The first start is the first time the run
// executes much of the actor's code: under QEMU that includes
// translating it to the host's instructions (TCG), which a real core does
// not do; "again" repeats the same start, unloaded in between, with the
// emulator's translations warm (RATIONALE.md, "Native actors", cold
// start).
func (b *bench) coldStart(name string, m Module) error {
	var d [2]time.Duration
	var engine string
	for i := range d {
		start := time.Now()
		actor, unload, err := b.load(fmt.Sprintf("cold-%s-%d", name, i), name, m, nil, runtime.Limits{Timeout: time.Minute})
		if err != nil {
			return err
		}
		// Every example answers an unknown operation with an actor
		// error: a full call through the guest.
		_, err = b.invoke(actor, "first-call", nil)
		d[i], engine = time.Since(start), b.engine(actor)
		unload()
		var ae *runtime.ActorError
		if !errors.As(err, &ae) {
			return fmt.Errorf("first call: want an actor error, got %v", err)
		}
	}
	what := fmt.Sprintf("%d bytes", len(m.Code))
	if engine == "native" {
		what = "built in"
	}
	fmt.Fprintf(b.w, "bench: cold-start %s %d ms, again %d ms (%s, %s)\n", name, d[0].Milliseconds(), d[1].Milliseconds(), what, engine)
	return nil
}

// idleHeap prices an idle instance: the Go heap that IdleInstances more of
// them hold, less the linear memory wazero allocated for them, per
// instance.
func (b *bench) idleHeap(name string, m Module) error {
	n := b.o.IdleInstances
	// max_concurrent bounds the pool: room for the one Load starts and n.
	actor, unload, err := b.load("idle-"+name, name, m, nil, runtime.Limits{MaxConcurrent: uint32(n + 1), Timeout: time.Minute})
	if err != nil {
		return err
	}
	defer unload()
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	started, linear, err := b.rt.Warm(b.ctx, actor, n+1)
	if err != nil {
		return err
	}
	if started != n {
		return fmt.Errorf("started %d instances, want %d", started, n)
	}
	goruntime.Gosched() // see invoke
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	beyond := (float64(after.HeapAlloc) - float64(before.HeapAlloc) - float64(linear)) / float64(n)
	fmt.Fprintf(b.w, "bench: idle-instance-heap %s %s KiB beyond linear memory (n=%d, linear %d KiB each, %s)\n",
		name, num(beyond/1024), n, linear/uint64(n)/1024, b.engine(actor))
	return nil
}

// num prints x with about three significant digits and no exponent.
func num(x float64) string {
	switch a := max(x, -x); {
	case a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.3f", x)
}
