// Package native is the table of actors translated to Go at release time
// and compiled into this binary (RATIONALE.md, "Native actors"): for each
// CID, a constructor of instances and what was baked into the code at
// translation (the memory maximum, the call-depth bound, the imports and
// the initializers). The runtime serves an actor natively only when its
// manifest entry asks for it and this table holds exactly its CID with
// the same memory limit; else the interpreter runs it.
//
// Generated packages (runtime/native/translate) register themselves in
// their init functions; a build gets them by importing the package
// translate.Write wrote at the root of its output directory. The package
// depends on nothing but the standard library and go-cid, so that the
// generated code does not pull wazero in.
package native

import (
	"fmt"
	"sort"
	"sync"

	"github.com/ipfs/go-cid"
)

// Import is one function the module imports, in the order of its import
// section. Params and Results are WebAssembly value types as their
// binary encoding (0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64).
type Import struct {
	Module, Name    string
	Params, Results []byte
}

// Value types (WebAssembly 2.0 §5.3.1).
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
	F32 byte = 0x7d
	F64 byte = 0x7c
)

// Host is what an instance calls for its imports. Call runs import i
// (Actor.Imports[i]) with its parameters in stack, one value a slot as
// wazero passes them (i32 zero-extended, floats as their bits), and
// leaves its results at the start of stack. stack holds at least
// max(len(Params), len(Results)) slots.
type Host interface {
	Call(i int, stack []uint64)
}

// Instance is one instance of a translated module: its own linear memory
// and globals. Calls trap by panicking (the runtime recovers them); an
// instance is used by one call at a time.
type Instance interface {
	// Memory is the instance's linear memory; memory.grow replaces the
	// slice it points to.
	Memory() *[]byte
	// GuestCall is the export __guest_call.
	GuestCall(operationLen, payloadLen int32) int32
	// Init runs the initializer export name (one of Actor.Inits).
	Init(name string)
	// SetGlobal sets the module's global of that index (a mutable i32,
	// i64, f32 or f64 global, the value as wazero's api.Global.Get gives
	// it) when restoring a Snapshot.
	SetGlobal(index uint32, value uint64)
}

// Snapshot is an instance's state after its initializers ran at release
// time (runtime.PrepareNative), for instances that start from it instead
// of running them (RATIONALE.md, "Pre-initialized instances"): its linear
// memory as the bytes that differ from a new instance's, its mutable
// globals, the WASI virtual clock and the capabilities the initializers
// were refused.
type Snapshot struct {
	// Pages is the linear memory's size, in 64 KiB pages.
	Pages uint32
	// Runs are the bytes of memory that differ from those New leaves
	// (zero above the initial memory), in increasing offsets.
	Runs []Run
	// Globals are the module's mutable globals (the meter's fuel aside).
	Globals []Global
	// Clock is the instance's WASI virtual clock, in ns.
	Clock uint64
	// Denied are the capabilities refused to the initializers, one entry
	// per refusal, in order.
	Denied []string
}

// Run is a stretch of bytes of a Snapshot's memory.
type Run struct {
	Off  uint32
	Data string
}

// Global is one global's value in a Snapshot.
type Global struct {
	Index uint32
	Value uint64
}

// Actor is one translated module.
type Actor struct {
	// Name is the actor's name at translation (informative).
	Name string
	// CID names the module bytes that were translated.
	CID cid.Cid
	// MemoryPages is the memory limit the actor was translated under: the
	// module's memory maximum was set to it (or kept, if lower), and
	// memory.grow past it fails. The runtime runs the actor natively only
	// under the same limit.
	MemoryPages uint32
	// MinPages is the module's initial memory.
	MinPages uint32
	// MaxDepth bounds nested calls of the module's functions: one more
	// traps with "stack overflow".
	MaxDepth uint32
	// Metered: the module was metered before translation (always, in
	// builds; the import teastick:meter.yield is then among Imports).
	Metered bool
	// Imports are the module's function imports, in order.
	Imports []Import
	// Inits are the initializer exports present, in the order the
	// runtime runs them (_initialize, _start, wapc_init).
	Inits []string
	// Snapshot, when set, is the state of an instance whose initializers
	// ran under no grants at release time: the runtime starts instances
	// from it rather than run Inits, unless the actor is granted what
	// would have made them see something else (random bytes).
	Snapshot *Snapshot
	// New makes an instance; data segments are copied in, no code runs.
	New func(Host) Instance
}

var (
	mu     sync.RWMutex
	actors = map[string]*Actor{}
)

// Register adds a translated actor; generated packages call it from
// init. A CID registered twice panics (a build error, not input).
func Register(a *Actor) {
	mu.Lock()
	defer mu.Unlock()
	k := a.CID.KeyString()
	if _, ok := actors[k]; ok {
		panic(fmt.Sprintf("native: actor %s registered twice", a.CID))
	}
	actors[k] = a
}

// Lookup returns the translated actor of c, if this binary holds one.
func Lookup(c cid.Cid) (*Actor, bool) {
	if !c.Defined() {
		return nil, false
	}
	mu.RLock()
	defer mu.RUnlock()
	a, ok := actors[c.KeyString()]
	return a, ok
}

// All returns every translated actor, sorted by CID.
func All() []*Actor {
	mu.RLock()
	out := make([]*Actor, 0, len(actors))
	for _, a := range actors {
		out = append(out, a)
	}
	mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CID.KeyString() < out[j].CID.KeyString() })
	return out
}
