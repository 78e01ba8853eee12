// Package nativediff is the differential suite of issue 18: every WAT
// fixture, every example actor and the AssemblyScript guest, each with
// calls that reach its behaviours (results, actor errors, traps of each
// kind, deadlines, denied capabilities), run in the interpreter and
// natively, which must agree. The cases live here, outside any test, so
// that the same suite runs on the host (runtime's TestNativeDifferential,
// built with the tag nativegen) and on the stick (the console's
// nativediff command, booted by qemu's TestStickNativeDifferential), where
// the translations run on the board's own architecture: 32-bit arm, whose
// word accesses and comparisons translate's rewrites change.
//
// A case names its module as runtime/internal/nativegen names it
// ("wat-compute", "go-echo", "ascript"); the caller supplies the bytes
// (Names lists them) and the binary supplies the translations.
package nativediff

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/native"
)

// Call is one invocation.
type Call struct {
	Op      string
	Payload []byte
}

// Case is one module, its grants and limits, and the calls made on it.
type Case struct {
	// Module is the module's name (runtime/internal/nativegen's).
	Module string
	Grants []string
	Limits runtime.Limits
	Calls  []Call
	// InitTimeout, when set, shortens Config.InitTimeout (initspin's
	// initializer never returns).
	InitTimeout time.Duration
}

// U32LE and U32BE are the fixtures' payloads of one number.
func U32LE(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
func U32BE(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// EdgeCall builds edge.wat's "call" payload: a host call of ns.op on data.
func EdgeCall(ns, op string, data []byte) []byte {
	p := append([]byte{byte(len(ns))}, ns...)
	p = append(append(p, byte(len(op))), op...)
	return append(p, data...)
}

// ABC is tables.wat's payload: its operands a, b and c.
func ABC(a, b, c uint32) []byte { return append(append(U32LE(a), U32LE(b)...), U32LE(c)...) }

// TableCall is one of tables.wat's operations, in bounds (Trap false) or
// out of bounds (wazero's "invalid table access").
type TableCall struct {
	Call
	Trap bool
}

// TableCalls are tables.wat's operations in order. A trap replaces the
// instance, so each call after one starts from the fixture's tables: $t
// of 4 entries (maximum 8) holding $f1 at 0, $u of 2 (maximum 16), the
// passive segment $p of 3 entries.
var TableCalls = []TableCall{
	{Call{"g", ABC(0, 0, 0)}, false}, {Call{"g", ABC(3, 0, 0)}, false},
	{Call{"g", ABC(4, 0, 0)}, true}, {Call{"g", ABC(0xffffffff, 0, 0)}, true},
	{Call{"s", ABC(3, 0, 0)}, false}, {Call{"s", ABC(4, 0, 0)}, true}, {Call{"s", ABC(0x80000000, 0, 0)}, true},
	{Call{"n", ABC(0, 0, 0)}, false}, {Call{"n", ABC(4, 0, 0)}, true},
	{Call{"f", ABC(1, 0, 3)}, false}, {Call{"f", ABC(4, 0, 0)}, false},
	{Call{"f", ABC(5, 0, 0)}, true}, {Call{"f", ABC(2, 0, 3)}, true}, {Call{"f", ABC(1, 0, 0xffffffff)}, true},
	{Call{"c", ABC(0, 1, 3)}, false}, {Call{"c", ABC(1, 0, 3)}, false}, {Call{"c", ABC(4, 4, 0)}, false},
	{Call{"c", ABC(2, 0, 3)}, true}, {Call{"c", ABC(0, 2, 3)}, true}, {Call{"c", ABC(5, 0, 0)}, true},
	{Call{"c", ABC(0, 0xfffffffe, 2)}, true}, {Call{"c", ABC(0x80000000, 0, 0x80000000)}, true},
	{Call{"C", ABC(0, 0, 2)}, false}, {Call{"C", ABC(0, 1, 2)}, true},
	{Call{"U", ABC(1, 0, 1)}, false}, {Call{"U", ABC(1, 0, 2)}, true},
	{Call{"i", ABC(0, 0, 3)}, false}, {Call{"i", ABC(1, 1, 2)}, false}, {Call{"i", ABC(0, 3, 0)}, false},
	{Call{"i", ABC(4, 0, 0)}, false}, {Call{"i", ABC(0, 4, 0)}, true}, {Call{"i", ABC(2, 0, 3)}, true},
	{Call{"i", ABC(0, 1, 3)}, true}, {Call{"i", ABC(0xffffffff, 0, 1)}, true},
	{Call{"a", ABC(0, 0, 0)}, false}, {Call{"a", ABC(0, 0, 1)}, true},
	// d drops $p: the instance's next table.init from it traps, the
	// next instance's (after that trap) does not.
	{Call{"d", ABC(0, 0, 0)}, false}, {Call{"i", ABC(0, 0, 1)}, true}, {Call{"i", ABC(0, 0, 1)}, false},
	{Call{"d", ABC(0, 0, 1)}, true},
	// table.grow answers -1 past a maximum, without a trap; the grown
	// entries are then in bounds.
	{Call{"w", ABC(0, 0, 2)}, false}, {Call{"w", ABC(0, 0, 3)}, false}, {Call{"w", ABC(0, 0, 0)}, false},
	{Call{"x", ABC(0, 0, 14)}, false}, {Call{"x", ABC(0, 0, 1)}, false}, {Call{"x", ABC(0, 0, 0xffffffff)}, false},
	{Call{"g", ABC(5, 0, 0)}, false}, {Call{"f", ABC(4, 0, 2)}, false}, {Call{"U", ABC(15, 5, 1)}, false},
	{Call{"g", ABC(6, 0, 0)}, true}, {Call{"U", ABC(16, 0, 1)}, true},
	{Call{"?", nil}, false},
}

func tableCalls() []Call {
	var calls []Call
	for _, c := range TableCalls {
		calls = append(calls, c.Call)
	}
	return calls
}

func repeat(b []byte, n int) []byte {
	out := make([]byte, 0, len(b)*n)
	for range n {
		out = append(out, b...)
	}
	return out
}

// Cases returns the suite, in the order it runs. It is made on each call,
// not held: the payloads come to a third of a megabyte, which a stick
// that never runs the suite should not carry on its heap.
func Cases() []Case {
	return []Case{
		{Module: "wat-badimport"},
		{Module: "wat-badsig"},
		{Module: "wat-bigmem"},
		{Module: "wat-bigtable"},
		{Module: "wat-tablegrow"},
		{Module: "wat-datasign1"},
		{Module: "wat-datasign2"},
		{Module: "wat-datasign3"},
		{Module: "wat-initspin", InitTimeout: time.Second},
		{Module: "wat-inittrap"},
		{Module: "wat-meterimport"},
		{Module: "wat-noexport"},
		// Calls end well within the deadline or far past it on both engines
		// (fib 60 and 2^32 loop iterations take minutes even natively).
		{Module: "wat-compute", Limits: runtime.Limits{Timeout: 2 * time.Second}, Calls: []Call{
			{"fib", []byte{16}}, {"count", U32LE(10000)}, {"ping", nil}, {"count", U32LE(0xffffffff)}, {"ping", nil}, {"fib", []byte{60}},
		}},
		{Module: "wat-crunch", Calls: []Call{{"x", U32BE(0)}, {"x", U32BE(100000)}, {"x", nil}}},
		// edge's loop never ends: its case has a short deadline. The rest
		// run under the default one, which they finish well within even in
		// the stick's interpreter (grow, page by page to the limit, took
		// over 100 ms there on riscv64).
		{Module: "wat-edge", Grants: []string{"log"}, Limits: runtime.Limits{Timeout: 100 * time.Millisecond}, Calls: []Call{
			{"echo", []byte("hello")}, {"loop", nil}, {"echo", []byte("again")},
		}},
		{Module: "wat-edge", Grants: []string{"crypto.sha256", "log"}, Calls: []Call{
			{"echo", []byte("hello")}, {"echo", nil}, {"trap", nil}, {"echo", []byte("again")},
			{"grow", nil}, {"huge", nil}, {"oob", nil}, {"request", nil}, {"fail", nil},
			{"call", EdgeCall("crypto", "sha256", []byte("data"))}, {"call", EdgeCall("kv", "get", []byte("k"))},
			{"nothing", nil}, {"print", []byte("line\n")}, {"xrandom", nil}, {"klock", nil}, {"sleep", nil}, {"zopen", nil}, {"?", nil},
		}},
		{Module: "wat-fdwrite", Grants: []string{"log"}, Calls: []Call{
			{"w", append(U32LE(16), U32LE(100)...)}, {"w", append(U32LE(7168), U32LE(0)...)}, {"w", append(U32LE(8000), U32LE(1)...)},
		}},
		{Module: "wat-initcaps", Grants: []string{"kv"}, Calls: []Call{{"i", nil}, {"c", nil}}},
		{Module: "wat-initslow", Calls: []Call{{"x", nil}}},
		// Pre-initialized natively (RATIONALE.md, "Pre-initialized
		// instances"), but for the grant random, under which the native
		// instance runs its initializers as the interpreter does; initprint's
		// output keeps it from being pre-initialized.
		{Module: "wat-preinit", Calls: []Call{{"x", nil}, {"x", nil}}},
		{Module: "wat-preinit", Grants: []string{"random"}, Calls: []Call{{"x", nil}}},
		{Module: "wat-initprint", Grants: []string{"log"}, Calls: []Call{{"x", nil}}},
		{Module: "wat-recurse", Calls: []Call{{"r", U32LE(100)}, {"r", U32LE(5000)}, {"r", U32LE(7)}}},
		{Module: "wat-traps", Calls: []Call{{"unreachable", nil}, {"div0", nil}, {"table-oob", nil}, {"y-type", nil}, {"ok", nil}}},
		{Module: "wat-tables", Calls: tableCalls()},
		// The state machine whose constant jumps translate's rewrite makes
		// direct (spin: forever, to the deadline).
		{Module: "wat-dispatch", Limits: runtime.Limits{Timeout: 50 * time.Millisecond}, Calls: []Call{
			{"run", U32LE(0)}, {"run", U32LE(1)}, {"run", U32LE(2)}, {"run", U32LE(1000)}, {"spin", nil}, {"ping", nil}, {"run", U32LE(77)},
		}},
		{Module: "wat-spin", Limits: runtime.Limits{Timeout: 50 * time.Millisecond}, Calls: []Call{{"ping", nil}, {"spinning", nil}, {"ping", nil}}},
		{Module: "go-echo", Grants: []string{"log"}, Calls: []Call{
			{"echo", []byte("hello")}, {"echo", repeat([]byte{0xa5}, 300_000)}, {"print", []byte("a line")}, {"nope", nil},
		}},
		{Module: "go-echo", Grants: []string{"log", "random"}, Calls: []Call{{"echo", []byte("seeded")}}},
		{Module: "go-kernel", Limits: runtime.Limits{Timeout: time.Minute}, Calls: []Call{
			{"run", append(U32BE(16), U32BE(1)...)}, {"run", nil}, {"nope", nil},
		}},
		{Module: "go-notary", Grants: []string{"crypto"}, Calls: []Call{
			{"hash", []byte("data")}, {"notarize", []byte("doc")}, {"nope", nil},
		}},
		{Module: "go-wordcount", Calls: []Call{
			{"count", []byte("the quick brown fox jumps over the lazy dog the end")}, {"count", nil}, {"nope", nil},
		}},
		{Module: "ascript", Grants: []string{"crypto.sha256"}, Calls: []Call{
			{"echo", []byte("hello from AssemblyScript")}, {"hash", repeat([]byte("teastick"), 4096)}, {"kv", []byte("key")}, {"fail", nil}, {"nope", nil},
		}},
	}
}

// Names are the modules the cases name, each once, in order.
func Names() []string {
	var names []string
	seen := map[string]bool{}
	for _, c := range Cases() {
		if !seen[c.Module] {
			seen[c.Module] = true
			names = append(names, c.Module)
		}
	}
	return names
}

// PrepareTimeout bounds deciding whether the runtime accepts module for
// translation (runtime.PrepareNative runs its initializers): the
// shortest InitTimeout a case gives it, else a minute, past the
// runtime's own 30 s deadline for initializers, which then decides. A
// timeout of a host's choosing would refuse a slow initializer on a
// loaded host (initslow under the race detector) and leave out a module
// the suite expects translated.
func PrepareTimeout(module string) time.Duration {
	d := time.Minute
	for _, c := range Cases() {
		if c.Module == module && c.InitTimeout > 0 {
			d = min(d, c.InitTimeout)
		}
	}
	return d
}

// Outcome is what a call gave, in a form both engines must match.
func Outcome(out []byte, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("ok: %x", out)
}

// SameKind reports whether both errors wrap the same runtime sentinels.
func SameKind(a, b error) bool {
	for _, s := range []error{runtime.ErrCIDMismatch, runtime.ErrInvalidModule, runtime.ErrInvalidLimits, runtime.ErrDeadline, runtime.ErrTrap, runtime.ErrActor} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

// Trunc shortens what a mismatch prints of a long payload or outcome.
func Trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// Result is one case's run.
type Result struct {
	// Refused is the interpreter's refusal of the module, which the
	// native load matched (nil: both loaded it).
	Refused error
	// Calls is how many calls both engines answered alike.
	Calls int
	// Mismatches says where the engines differed (none: the case
	// passed). A mismatch that leaves nothing to compare ends the case.
	Mismatches []string
	// Slowest is the longest call either engine finished before its
	// deadline, and Deadline the case's: how near a call came to
	// turning into a deadline on one engine only (a wall-clock
	// difference the suite would report).
	Slowest, Deadline time.Duration
}

// Run loads module under the case's grants and limits as "a" in two
// runtimes, one interpreting it and one running it natively from the
// binary's translation, and compares the loads, every call's outcome and
// the actor's statistics. log receives both runtimes' logs (nil: none).
func Run(ctx context.Context, c Case, module []byte, log *slog.Logger) Result {
	var res Result
	fail := func(format string, args ...any) {
		res.Mismatches = append(res.Mismatches, fmt.Sprintf(format, args...))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := runtime.Config{Engine: runtime.EngineInterpreter, InitTimeout: c.InitTimeout, Log: log}
	ri, rn := runtime.New(cfg), runtime.New(cfg)
	defer ri.Close()
	defer rn.Close()
	id, _ := ipfs.Add(module)
	errI := ri.Load(ctx, runtime.Spec{Name: "a", CID: id, Grants: c.Grants, Limits: c.Limits, Module: module})
	errN := rn.Load(ctx, runtime.Spec{Name: "a", CID: id, Grants: c.Grants, Limits: c.Limits, Module: module, Native: true})
	_, translated := native.Lookup(id)
	if errI != nil {
		// Refused by the runtime: nothing to translate.
		res.Refused = errI
		if translated {
			fail("refused by the interpreter (%v) but translated", errI)
		}
		if errN == nil || !SameKind(errI, errN) {
			fail("interpreter refused with %v, native load gave %v", errI, errN)
		}
		return res
	}
	switch {
	case !translated:
		fail("%s (%s) loads in the interpreter but this binary holds no translation of it", c.Module, id)
		return res
	case errN != nil:
		fail("native load: %v", errN)
		return res
	}
	ii, _ := ri.Actor("a")
	in, _ := rn.Actor("a")
	if ii.Engine != "interpreter" || in.Engine != "native" {
		fail("engines %q and %q, want interpreter and native", ii.Engine, in.Engine)
		return res
	}
	res.Deadline = ii.Limits.Timeout
	timed := func(r *runtime.Runtime, call Call) string {
		start := time.Now()
		out, err := r.Invoke(ctx, "a", call.Op, call.Payload)
		if d := time.Since(start); !errors.Is(err, runtime.ErrDeadline) {
			res.Slowest = max(res.Slowest, d)
		}
		return Outcome(out, err)
	}
	for _, call := range c.Calls {
		oi, on := timed(ri, call), timed(rn, call)
		if oi != on {
			fail("%s %q: interpreter %s, native %s", call.Op, Trunc(call.Payload), Trunc([]byte(oi)), Trunc([]byte(on)))
			continue
		}
		res.Calls++
	}
	ii, _ = ri.Actor("a")
	in, _ = rn.Actor("a")
	si, sn := ii.Stats, in.Stats
	if si.Failures != sn.Failures || si.Faults != sn.Faults ||
		si.Instances != sn.Instances || fmt.Sprint(si.Denied) != fmt.Sprint(sn.Denied) {
		fail("stats differ: interpreter %+v, native %+v", si, sn)
	}
	return res
}
