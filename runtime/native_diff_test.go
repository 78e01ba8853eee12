//go:build nativegen

package runtime_test

// The native engine against the interpreter (issue 18). Built with the tag
// nativegen after runtime/internal/nativegen has translated every fixture
// into build/_native/rt (make test does both: runtime/runtime.mk).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/native"

	_ "github.com/teastick/teastick/build/_native/rt"
)

type diffCall struct {
	op      string
	payload []byte
}

type diffCase struct {
	name   string // as nativegen names it
	module func(testing.TB) []byte
	grants []string
	limits runtime.Limits
	calls  []diffCall
	// initTimeout, when set, shortens Config.InitTimeout (initspin's
	// initializer never returns).
	initTimeout time.Duration
}

func u32le(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
func u32be(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func wat(name string) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return actortest.Wat(t, name) }
}

func goActor(name string) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return actortest.GoActor(t, name) }
}

// diffCases are every WAT fixture, every example actor and the
// AssemblyScript guest, each with calls that reach its behaviours: results,
// actor errors, traps of each kind, deadlines, denied capabilities.
var diffCases = []diffCase{
	{name: "wat-badimport", module: wat("badimport")},
	{name: "wat-badsig", module: wat("badsig")},
	{name: "wat-bigmem", module: wat("bigmem")},
	{name: "wat-bigtable", module: wat("bigtable")},
	{name: "wat-tablegrow", module: wat("tablegrow")},
	{name: "wat-datasign1", module: wat("datasign1")},
	{name: "wat-datasign2", module: wat("datasign2")},
	{name: "wat-datasign3", module: wat("datasign3")},
	{name: "wat-initspin", module: wat("initspin"), initTimeout: time.Second},
	{name: "wat-inittrap", module: wat("inittrap")},
	{name: "wat-meterimport", module: wat("meterimport")},
	{name: "wat-noexport", module: wat("noexport")},
	// Calls end well within the deadline or far past it on both engines
	// (fib 60 and 2^32 loop iterations take minutes even natively).
	{name: "wat-compute", module: wat("compute"), limits: runtime.Limits{Timeout: 2 * time.Second}, calls: []diffCall{
		{"fib", []byte{16}}, {"count", u32le(10000)}, {"ping", nil}, {"count", u32le(0xffffffff)}, {"ping", nil}, {"fib", []byte{60}},
	}},
	{name: "wat-crunch", module: wat("crunch"), calls: []diffCall{{"x", u32be(0)}, {"x", u32be(100000)}, {"x", nil}}},
	{name: "wat-edge", module: wat("edge"), grants: []string{"crypto.sha256", "log"}, limits: runtime.Limits{Timeout: 100 * time.Millisecond}, calls: []diffCall{
		{"echo", []byte("hello")}, {"echo", nil}, {"trap", nil}, {"echo", []byte("again")}, {"loop", nil},
		{"grow", nil}, {"huge", nil}, {"oob", nil}, {"request", nil}, {"fail", nil},
		{"call", hostCall("crypto", "sha256", []byte("data"))}, {"call", hostCall("kv", "get", []byte("k"))},
		{"nothing", nil}, {"print", []byte("line\n")}, {"xrandom", nil}, {"klock", nil}, {"sleep", nil}, {"zopen", nil}, {"?", nil},
	}},
	{name: "wat-fdwrite", module: wat("fdwrite"), grants: []string{"log"}, calls: []diffCall{
		{"w", append(u32le(16), u32le(100)...)}, {"w", append(u32le(7168), u32le(0)...)}, {"w", append(u32le(8000), u32le(1)...)},
	}},
	{name: "wat-initcaps", module: wat("initcaps"), grants: []string{"kv"}, calls: []diffCall{{"i", nil}, {"c", nil}}},
	{name: "wat-initslow", module: wat("initslow"), calls: []diffCall{{"x", nil}}},
	// Pre-initialized natively (RATIONALE.md, "Pre-initialized
	// instances"), but for the grant random, under which the native
	// instance runs its initializers as the interpreter does; initprint's
	// output keeps it from being pre-initialized.
	{name: "wat-preinit", module: wat("preinit"), calls: []diffCall{{"x", nil}, {"x", nil}}},
	{name: "wat-preinit", module: wat("preinit"), grants: []string{"random"}, calls: []diffCall{{"x", nil}}},
	{name: "wat-initprint", module: wat("initprint"), grants: []string{"log"}, calls: []diffCall{{"x", nil}}},
	{name: "wat-recurse", module: wat("recurse"), calls: []diffCall{{"r", u32le(100)}, {"r", u32le(5000)}, {"r", u32le(7)}}},
	{name: "wat-traps", module: wat("traps"), calls: []diffCall{{"unreachable", nil}, {"div0", nil}, {"table-oob", nil}, {"y-type", nil}, {"ok", nil}}},
	{name: "wat-tables", module: wat("tables"), calls: tableDiffCalls()},
	// The state machine whose constant jumps translate's rewrite makes
	// direct (spin: forever, to the deadline).
	{name: "wat-dispatch", module: wat("dispatch"), limits: runtime.Limits{Timeout: 50 * time.Millisecond}, calls: []diffCall{
		{"run", u32le(0)}, {"run", u32le(1)}, {"run", u32le(2)}, {"run", u32le(1000)}, {"spin", nil}, {"ping", nil}, {"run", u32le(77)},
	}},
	{name: "wat-spin", module: wat("spin"), limits: runtime.Limits{Timeout: 50 * time.Millisecond}, calls: []diffCall{{"ping", nil}, {"spinning", nil}, {"ping", nil}}},
	{name: "go-echo", module: goActor("echo"), grants: []string{"log"}, calls: []diffCall{
		{"echo", []byte("hello")}, {"echo", bytes.Repeat([]byte{0xa5}, 300_000)}, {"print", []byte("a line")}, {"nope", nil},
	}},
	{name: "go-echo", module: goActor("echo"), grants: []string{"log", "random"}, calls: []diffCall{{"echo", []byte("seeded")}}},
	{name: "go-kernel", module: goActor("kernel"), limits: runtime.Limits{Timeout: time.Minute}, calls: []diffCall{
		{"run", append(u32be(16), u32be(1)...)}, {"run", nil}, {"nope", nil},
	}},
	{name: "go-notary", module: goActor("notary"), grants: []string{"crypto"}, calls: []diffCall{
		{"hash", []byte("data")}, {"notarize", []byte("doc")}, {"nope", nil},
	}},
	{name: "go-wordcount", module: goActor("wordcount"), calls: []diffCall{
		{"count", []byte("the quick brown fox jumps over the lazy dog the end")}, {"count", nil}, {"nope", nil},
	}},
	{name: "ascript", module: func(t testing.TB) []byte { return actortest.AssemblyScript(t) }, grants: []string{"crypto.sha256"}, calls: []diffCall{
		{"echo", []byte("hello from AssemblyScript")}, {"hash", bytes.Repeat([]byte("teastick"), 4096)}, {"kv", []byte("key")}, {"fail", nil}, {"nope", nil},
	}},
}

// abc is tables.wat's payload: its operands a, b and c.
func abc(a, b, c uint32) []byte { return append(append(u32le(a), u32le(b)...), u32le(c)...) }

// tableCalls are tables.wat's operations in order, each in bounds (trap
// false) or out of bounds (wazero's "invalid table access"). A trap
// replaces the instance, so each call after one starts from the
// fixture's tables: $t of 4 entries (maximum 8) holding $f1 at 0, $u of
// 2 (maximum 16), the passive segment $p of 3 entries.
var tableCalls = []struct {
	diffCall
	trap bool
}{
	{diffCall{"g", abc(0, 0, 0)}, false}, {diffCall{"g", abc(3, 0, 0)}, false},
	{diffCall{"g", abc(4, 0, 0)}, true}, {diffCall{"g", abc(0xffffffff, 0, 0)}, true},
	{diffCall{"s", abc(3, 0, 0)}, false}, {diffCall{"s", abc(4, 0, 0)}, true}, {diffCall{"s", abc(0x80000000, 0, 0)}, true},
	{diffCall{"n", abc(0, 0, 0)}, false}, {diffCall{"n", abc(4, 0, 0)}, true},
	{diffCall{"f", abc(1, 0, 3)}, false}, {diffCall{"f", abc(4, 0, 0)}, false},
	{diffCall{"f", abc(5, 0, 0)}, true}, {diffCall{"f", abc(2, 0, 3)}, true}, {diffCall{"f", abc(1, 0, 0xffffffff)}, true},
	{diffCall{"c", abc(0, 1, 3)}, false}, {diffCall{"c", abc(1, 0, 3)}, false}, {diffCall{"c", abc(4, 4, 0)}, false},
	{diffCall{"c", abc(2, 0, 3)}, true}, {diffCall{"c", abc(0, 2, 3)}, true}, {diffCall{"c", abc(5, 0, 0)}, true},
	{diffCall{"c", abc(0, 0xfffffffe, 2)}, true}, {diffCall{"c", abc(0x80000000, 0, 0x80000000)}, true},
	{diffCall{"C", abc(0, 0, 2)}, false}, {diffCall{"C", abc(0, 1, 2)}, true},
	{diffCall{"U", abc(1, 0, 1)}, false}, {diffCall{"U", abc(1, 0, 2)}, true},
	{diffCall{"i", abc(0, 0, 3)}, false}, {diffCall{"i", abc(1, 1, 2)}, false}, {diffCall{"i", abc(0, 3, 0)}, false},
	{diffCall{"i", abc(4, 0, 0)}, false}, {diffCall{"i", abc(0, 4, 0)}, true}, {diffCall{"i", abc(2, 0, 3)}, true},
	{diffCall{"i", abc(0, 1, 3)}, true}, {diffCall{"i", abc(0xffffffff, 0, 1)}, true},
	{diffCall{"a", abc(0, 0, 0)}, false}, {diffCall{"a", abc(0, 0, 1)}, true},
	// d drops $p: the instance's next table.init from it traps, the
	// next instance's (after that trap) does not.
	{diffCall{"d", abc(0, 0, 0)}, false}, {diffCall{"i", abc(0, 0, 1)}, true}, {diffCall{"i", abc(0, 0, 1)}, false},
	{diffCall{"d", abc(0, 0, 1)}, true},
	// table.grow answers -1 past a maximum, without a trap; the grown
	// entries are then in bounds.
	{diffCall{"w", abc(0, 0, 2)}, false}, {diffCall{"w", abc(0, 0, 3)}, false}, {diffCall{"w", abc(0, 0, 0)}, false},
	{diffCall{"x", abc(0, 0, 14)}, false}, {diffCall{"x", abc(0, 0, 1)}, false}, {diffCall{"x", abc(0, 0, 0xffffffff)}, false},
	{diffCall{"g", abc(5, 0, 0)}, false}, {diffCall{"f", abc(4, 0, 2)}, false}, {diffCall{"U", abc(15, 5, 1)}, false},
	{diffCall{"g", abc(6, 0, 0)}, true}, {diffCall{"U", abc(16, 0, 1)}, true},
	{diffCall{"?", nil}, false},
}

func tableDiffCalls() []diffCall {
	var calls []diffCall
	for _, c := range tableCalls {
		calls = append(calls, c.diffCall)
	}
	return calls
}

// outcome is what a call gave, in a form both engines must match.
func outcome(out []byte, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("ok: %x", out)
}

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

// The differential suite: every fixture loads or is refused alike, and
// gives the same responses, actor errors and trap kinds, faults and
// instances natively as in the interpreter.
func TestNativeDifferential(t *testing.T) {
	for _, tc := range diffCases {
		t.Run(tc.name, func(t *testing.T) {
			module := tc.module(t)
			c := actortest.CID(module)
			p := newPair(t, runtime.Config{Engine: runtime.EngineInterpreter, InitTimeout: tc.initTimeout})
			errI, errN := p.loadBoth(module, tc.grants, tc.limits)
			_, translated := native.Lookup(c)
			if errI != nil {
				// Refused by the runtime: nothing to translate.
				if translated {
					t.Errorf("refused by the interpreter (%v) but translated", errI)
				}
				if errN == nil || !sameKind(errI, errN) {
					t.Errorf("interpreter refused with %v, native load gave %v", errI, errN)
				}
				return
			}
			if !translated {
				t.Fatalf("%s (%s) loads in the interpreter but was not translated: run `make runtime-prep` (runtime/internal/nativegen)", tc.name, c)
			}
			if errN != nil {
				t.Fatalf("native load: %v", errN)
			}
			if ei, en := p.engines(); ei != "interpreter" || en != "native" {
				t.Fatalf("engines %q and %q, want interpreter and native", ei, en)
			}
			for _, call := range tc.calls {
				if oi, on := p.both(call.op, call.payload); oi != on {
					t.Errorf("%s %q: interpreter %s\n  native %s", call.op, trunc(call.payload), trunc([]byte(oi)), trunc([]byte(on)))
				}
			}
			si, sn := p.stats()
			if si.Failures != sn.Failures || si.Faults != sn.Faults ||
				si.Instances != sn.Instances || fmt.Sprint(si.Denied) != fmt.Sprint(sn.Denied) {
				t.Errorf("stats differ: interpreter %+v, native %+v", si, sn)
			}
		})
	}
}

// sameKind: both errors wrap the same runtime sentinel.
func sameKind(a, b error) bool {
	for _, s := range []error{runtime.ErrCIDMismatch, runtime.ErrInvalidModule, runtime.ErrInvalidLimits, runtime.ErrDeadline, runtime.ErrTrap, runtime.ErrActor} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
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
	for _, c := range tableCalls {
		oi, on := p.both(c.op, c.payload)
		if oi != on {
			t.Errorf("%s %x: interpreter %s\n  native %s", c.op, c.payload, oi, on)
		}
		if got := strings.Contains(oi, "wasm error: invalid table access"); got != c.trap || !got && !strings.HasPrefix(oi, "ok: ") {
			t.Errorf("%s %x: interpreter %s, want a trap: %t", c.op, c.payload, oi, c.trap)
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
