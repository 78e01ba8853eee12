//go:build nativegen

package runtime_test

// The native engine against the interpreter (issue 18). Built with the tag
// nativegen after runtime/internal/nativegen has translated every fixture
// into build/_native/rt (make test does both: runtime/runtime.mk).

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/native"
	"github.com/teastick/teastick/runtime/nativediff"

	_ "github.com/teastick/teastick/build/_native/rt"
)

// Payload builders shared with the suite (runtime/nativediff).
var (
	u32le = nativediff.U32LE
	u32be = nativediff.U32BE
	abc   = nativediff.ABC
)

func wat(name string) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return actortest.Wat(t, name) }
}

func outcome(out []byte, err error) string { return nativediff.Outcome(out, err) }
func trunc(b []byte) string                { return nativediff.Trunc(b) }

// pair is the same actor loaded as "a" under the interpreter (i) and
// natively (n), in two runtimes, so that errors name it alike.
type pair struct{ i, n *runtime.Runtime }

func newPair(t testing.TB, cfg runtime.Config) pair {
	ri, _ := newRuntime(t, cfg)
	rn, _ := newRuntime(t, cfg)
	return pair{ri, rn}
}

// loadBoth loads module in both; it returns the interpreter's and the
// native load's errors.
func (p pair) loadBoth(module []byte, grants []string, lim runtime.Limits) (errI, errN error) {
	c := actortest.CID(module)
	errI = p.i.Load(context.Background(), runtime.Spec{Name: "a", CID: c, Grants: grants, Limits: lim, Module: module})
	errN = p.n.Load(context.Background(), runtime.Spec{Name: "a", CID: c, Grants: grants, Limits: lim, Module: module, Native: true})
	return errI, errN
}

// both calls op on each and returns the outcomes.
func (p pair) both(op string, payload []byte) (oi, on string) {
	return outcome(invoke(p.i, "a", op, payload)), outcome(invoke(p.n, "a", op, payload))
}

// engines returns what runs the actor in each.
func (p pair) engines() (string, string) {
	ii, _ := p.i.Actor("a")
	in, _ := p.n.Actor("a")
	return ii.Engine, in.Engine
}

func (p pair) stats() (runtime.Stats, runtime.Stats) {
	ii, _ := p.i.Actor("a")
	in, _ := p.n.Actor("a")
	return ii.Stats, in.Stats
}

// The differential suite (runtime/nativediff, which the stick runs too:
// qemu's TestStickNativeDifferential): every fixture loads or is refused
// alike, and gives the same responses, actor errors and trap kinds,
// faults and instances natively as in the interpreter.
func TestNativeDifferential(t *testing.T) {
	for _, tc := range nativediff.Cases() {
		t.Run(tc.Module, func(t *testing.T) {
			res := nativediff.Run(context.Background(), tc, actortest.Named(t, tc.Module), quiet)
			for _, m := range res.Mismatches {
				t.Error(m)
			}
			if len(res.Mismatches) == 0 && res.Refused == nil && res.Calls != len(tc.Calls) {
				t.Errorf("%d calls agree of %d", res.Calls, len(tc.Calls))
			}
			if strings.Contains(strings.Join(res.Mismatches, "\n"), "holds no translation") {
				t.Log("run `make runtime-prep` (runtime/internal/nativegen)")
			}
		})
	}
}

// nativeOnly loads a translated fixture natively, checking it runs so.
func nativeOnly(t *testing.T, r *runtime.Runtime, name string, module []byte, grants []string, lim runtime.Limits) {
	t.Helper()
	err := r.Load(context.Background(), runtime.Spec{Name: name, CID: actortest.CID(module), Grants: grants, Limits: lim, Module: module, Native: true})
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := r.Actor(name); in.Engine != "native" {
		t.Fatalf("%s: engine %q, want native (run make runtime-prep)", name, in.Engine)
	}
}

// Linear memory is bounded by the actor's memory limit natively: edge's
// grow takes pages until memory.grow refuses, at the limit, then traps;
// under another limit the translation (its maximum baked in) is not used.
func TestNativeMemoryLimit(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{Engine: runtime.EngineInterpreter})
	m := actortest.Wat(t, "edge")
	nativeOnly(t, r, "edge", m, nil, runtime.Limits{MaxRequest: 16 << 20, MaxResponse: 16 << 20})
	_, err := invoke(r, "edge", "grow", nil)
	if !errors.Is(err, runtime.ErrTrap) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("grow: %v, want the trap after memory.grow refused", err)
	}
	// The pool's next instance starts again at one page; grow it with a
	// host call's ensure and read the size through an echo of 15.9 MiB.
	p := bytes.Repeat([]byte{1}, int(runtime.DefaultLimits.MemoryPages)*65536-1024-65536)
	if out, err := invoke(r, "edge", "echo", p); err != nil || !bytes.Equal(out, p) {
		t.Fatalf("echo within the limit: %d bytes, %v", len(out), err)
	}
	p = bytes.Repeat([]byte{1}, int(runtime.DefaultLimits.MemoryPages)*65536-1024+1)
	if _, err := invoke(r, "edge", "echo", p); !errors.Is(err, runtime.ErrTrap) {
		t.Fatalf("echo past the limit: %v, want a trap (memory.grow refused)", err)
	}
	if err := r.Load(context.Background(), runtime.Spec{Name: "edge16", CID: actortest.CID(m), Module: m, Limits: runtime.Limits{MemoryPages: 16}, Native: true}); err != nil {
		t.Fatal(err)
	}
	if in, _ := r.Actor("edge16"); in.Engine != "interpreter" {
		t.Fatalf("under another memory limit: engine %q, want interpreter", in.Engine)
	}
}

// A native infinite loop ends at its deadline through the meter's yield,
// and the runtime keeps serving (spin answers ping after).
func TestNativeDeadline(t *testing.T) {
	t.Run("dispatch", nativeDispatchDeadline)
	r, _ := newRuntime(t, runtime.Config{Engine: runtime.EngineInterpreter})
	nativeOnly(t, r, "spin", actortest.Wat(t, "spin"), nil, runtime.Limits{Timeout: 50 * time.Millisecond, MaxConcurrent: 1})
	for range 3 {
		if _, err := invoke(r, "spin", "spinning", nil); !errors.Is(err, runtime.ErrDeadline) {
			t.Fatalf("spin: %v, want ErrDeadline", err)
		}
		if _, err := invoke(r, "spin", "ping", nil); err != nil {
			t.Fatalf("ping after the deadline: %v", err)
		}
	}
	in, _ := r.Actor("spin")
	if in.Stats.Faults != 3 || in.Stats.Yields == 0 {
		t.Fatalf("stats %+v: want 3 faults and yields", in.Stats)
	}
	// A canceled call ends too.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, err := r.Invoke(ctx, "spin", "spinning", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled spin: %v", err)
	}
}

// nativeDispatchDeadline: dispatch.wat's state 4 jumps to itself forever,
// a direct jump once translated (translate's directDispatch), and the
// copy of the meter's check on that jump still ends it at the deadline.
func nativeDispatchDeadline(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{Engine: runtime.EngineInterpreter})
	nativeOnly(t, r, "dispatch", actortest.Wat(t, "dispatch"), nil, runtime.Limits{Timeout: 50 * time.Millisecond, MaxConcurrent: 1})
	for range 3 {
		if _, err := invoke(r, "dispatch", "spin", nil); !errors.Is(err, runtime.ErrDeadline) {
			t.Fatalf("spin: %v, want ErrDeadline", err)
		}
		if out, err := invoke(r, "dispatch", "run", u32le(5)); err != nil || len(out) != 4 {
			t.Fatalf("run after the deadline: %x %v", out, err)
		}
	}
	if in, _ := r.Actor("dispatch"); in.Stats.Faults != 3 || in.Stats.Yields == 0 {
		t.Fatalf("stats %+v: want 3 faults and yields", in.Stats)
	}
}

// nativeFixture loads the WAT fixture name into a pair with no grants
// and the default limits, and fails unless its second side runs it
// natively.
func nativeFixture(t *testing.T, name string) pair {
	t.Helper()
	p := newPair(t, runtime.Config{Engine: runtime.EngineInterpreter})
	if errI, errN := p.loadBoth(actortest.Wat(t, name), nil, runtime.Limits{}); errI != nil || errN != nil {
		t.Fatal(errI, errN)
	}
	if _, en := p.engines(); en != "native" {
		t.Fatalf("engine %q, want native", en)
	}
	return p
}

// Runaway recursion traps with wazero's "stack overflow" natively too
// (compute's fib recurses once per level: a depth past the bound), and a
// recursion within the bound runs as in the interpreter.
func TestNativeCallDepth(t *testing.T) {
	p := nativeFixture(t, "recurse")
	for _, depth := range []uint32{10, 1000, 1990, 2100, 100000, 1 << 30} {
		oi, on := p.both("r", u32le(depth))
		if oi != on {
			t.Errorf("depth %d: interpreter %s, native %s", depth, oi, on)
		}
		if depth >= 2100 && !strings.Contains(on, "stack overflow") {
			t.Errorf("depth %d: native %s, want a stack overflow trap", depth, on)
		}
	}
	if out, err := invoke(p.n, "a", "r", u32le(5)); err != nil || len(out) != 4 {
		t.Fatalf("after the traps: %x %v", out, err)
	}
}

// Each trap kind natively is the interpreter's (traps.wat).
func TestNativeTraps(t *testing.T) {
	p := nativeFixture(t, "traps")
	for _, op := range []string{"unreachable", "load", "store", "div0", "rem0", "overflow", "nan", "big",
		"table-oob", "empty-entry", "y-type", "fill", "copy", "ok"} {
		oi, on := p.both(op, nil)
		if oi != on {
			t.Errorf("%s: interpreter %s\n  native %s", op, oi, on)
		}
		if op != "ok" && !strings.Contains(on, "wasm error: ") {
			t.Errorf("%s: %s, want a trap", op, on)
		}
	}
	si, sn := p.stats()
	if si.Faults != sn.Faults || si.Instances != sn.Instances {
		t.Errorf("stats: interpreter %+v, native %+v", si, sn)
	}
}

// Each table instruction natively answers or traps as in the interpreter,
// out of bounds with wazero's "invalid table access" (tables.wat).
func TestNativeTables(t *testing.T) {
	p := nativeFixture(t, "tables")
	for _, c := range nativediff.TableCalls {
		oi, on := p.both(c.Op, c.Payload)
		if oi != on {
			t.Errorf("%s %x: interpreter %s\n  native %s", c.Op, c.Payload, oi, on)
		}
		if got := strings.Contains(oi, "wasm error: invalid table access"); got != c.Trap || !got && !strings.HasPrefix(oi, "ok: ") {
			t.Errorf("%s %x: interpreter %s, want a trap: %t", c.Op, c.Payload, oi, c.Trap)
		}
	}
	si, sn := p.stats()
	if si.Faults != sn.Faults || si.Instances != sn.Instances {
		t.Errorf("stats: interpreter %+v, native %+v", si, sn)
	}
}

// FuzzNative compares the engines on random operations and payloads sent
// to the translated edge, compute, crunch, recurse, traps and tables
// fixtures and the AssemblyScript guest.
func FuzzNative(f *testing.F) {
	f.Add(uint8(0), "echo", []byte("x"))
	f.Add(uint8(0), "call", hostCall("crypto", "sha256", []byte("data")))
	f.Add(uint8(1), "fib", []byte{25})
	f.Add(uint8(2), "x", u32be(1000))
	f.Add(uint8(3), "hash", []byte("abc"))
	f.Add(uint8(4), "r", u32le(3000))
	f.Add(uint8(5), "div0", []byte{})
	f.Add(uint8(6), "copy", abc(0, 2, 3))
	f.Add(uint8(6), "init", abc(1, 1, 2))
	fixtures := []func(testing.TB) []byte{wat("edge"), wat("compute"), wat("crunch"), func(t testing.TB) []byte { return actortest.AssemblyScript(t) }, wat("recurse"), wat("traps"), wat("tables")}
	var pairs []pair
	var modules [][]byte
	lim := runtime.Limits{Timeout: 20 * time.Millisecond, MaxRequest: 1 << 16}
	grants := []string{"crypto", "kv", "log"}
	for i, mod := range fixtures {
		p := pair{runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: quiet}), runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: quiet})}
		f.Cleanup(func() { p.i.Close(); p.n.Close() })
		m := mod(f)
		if errI, errN := p.loadBoth(m, grants, lim); errI != nil || errN != nil {
			f.Fatal(errI, errN)
		}
		if _, en := p.engines(); en != "native" {
			f.Fatalf("fixture %d: engine %q, want native", i, en)
		}
		pairs = append(pairs, p)
		modules = append(modules, m)
	}
	f.Fuzz(func(t *testing.T, which uint8, op string, payload []byte) {
		i := int(which) % len(fixtures)
		p := pairs[i]
		oi := outcome(p.i.Invoke(context.Background(), "a", op, payload))
		on := outcome(p.n.Invoke(context.Background(), "a", op, payload))
		if strings.Contains(oi, "deadline") || strings.Contains(on, "deadline") {
			// A deadline is wall clock: the native engine may finish what
			// the interpreter could not in time, and then one side's
			// instance was replaced and the other's kept its state.
			// Start both afresh; anything else must match.
			if errI, errN := p.loadBoth(modules[i], grants, lim); errI != nil || errN != nil {
				t.Fatal(errI, errN)
			}
			return
		}
		if oi != on {
			t.Fatalf("fixture %d %q %x: interpreter %s\n  native %s", i, op, payload, trunc([]byte(oi)), trunc([]byte(on)))
		}
	})
}

// The suite catches a translation that answers otherwise (fault
// injection): crunch's translation, registered under the CID of edge
// with a custom section appended (the same code to the interpreter, a
// CID no build translated), loads natively and answers edge's calls
// its own way; Run must report each call and the statistics.
func TestNativeDifferentialCatches(t *testing.T) {
	edge := append(actortest.Wat(t, "edge"), 0, 5, 4, 'f', 'a', 'k', 'e')
	crunch, ok := native.Lookup(actortest.CID(actortest.Wat(t, "crunch")))
	if !ok {
		t.Fatal("crunch is not translated: run `make runtime-prep` (runtime/internal/nativegen)")
	}
	fake := *crunch
	fake.Name, fake.CID = "fake-edge", actortest.CID(edge)
	native.Register(&fake)
	c := nativediff.Case{Module: "fake-edge", Calls: []nativediff.Call{{Op: "echo", Payload: []byte("hello")}, {Op: "trap"}}}
	res := nativediff.Run(context.Background(), c, edge, quiet)
	if res.Refused != nil || res.Calls != 0 || len(res.Mismatches) != 3 {
		t.Fatalf("%+v: want both calls and the statistics to differ", res)
	}
	if res.Deadline != runtime.DefaultLimits.Timeout || res.Slowest <= 0 || res.Slowest >= res.Deadline {
		t.Errorf("slowest call %v, deadline %v: want the default deadline and a call timed below it", res.Slowest, res.Deadline)
	}
	for i, want := range []string{`echo "hello": interpreter ok: 68656c6c6f, native `, `trap "": interpreter error: `, "stats differ: "} {
		if !strings.HasPrefix(res.Mismatches[i], want) {
			t.Errorf("mismatch %d: %q, want it to start %q", i, res.Mismatches[i], want)
		}
	}
}
