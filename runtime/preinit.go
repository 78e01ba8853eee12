package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	"github.com/tetratelabs/wazero"

	"github.com/teastick/teastick/runtime/native"
)

// Pre-initialized instances (RATIONALE.md, "Pre-initialized instances"):
// a translated actor's initializers run once, at release time, under the
// interpreter (PrepareNative), and the stick starts its instances from
// the state they left (native.Snapshot) instead of running them again.
// Under QEMU a Go actor's runtime start was about 470 ms of each first
// load on the stick, nearly all of it TCG translating code that runs
// once.
//
// The state is the instance's, whole, only when the initializers saw
// exactly what they would see on the stick and left nothing but memory,
// globals and the WASI virtual clock behind. They run without
// capabilities (callState.granted), so what they can see is already
// fixed: the virtual clock, empty arguments and environment, and refusals
// (ABI.md, "Initializers"). The one exception is random_get, which
// answers an actor granted random even in its initializers (wasiRandom):
// its instances run their initializers as before (snapshotFor). A
// snapshot is not taken when an initializer calls anything else (output,
// waPC, poll_oneoff, exit) or when the module could keep state a
// snapshot does not hold (meterShape.stateful: tables written, data or
// element segments dropped, imported globals, a start function, mutable
// globals of reference or vector type).

// preinitGlobal prefixes the exports PrepareNative's run adds to read the
// module's mutable globals (wazero reads only exported ones).
const preinitGlobal = "teastick.preinit.global."

// initRecord watches the imports the initializers call in PrepareNative's
// run (one instance, its initializers in one goroutine).
type initRecord struct {
	globals []uint32 // the mutable globals to export
	impure  string   // the first import whose effect a snapshot would lose
}

// pureInit are the WASI functions whose effect in an initializer is on
// the instance's memory and virtual clock only, the same on every
// instance (wasi.go). WASI functions teastick does not provide answer
// ENOSYS, which is as pure.
var pureInit = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true, "fd_fdstat_get": true,
	"fd_prestat_get": true, "fd_close": true, "sched_yield": true,
}

// noteInit records a call of module.name from an initializer of v's
// PrepareNative run.
func (v *version) noteInit(cs *callState, module, name string) {
	rec := v.rec
	if rec == nil || !cs.init {
		return
	}
	_, provided := wasiFuncs[name]
	pure := module == wasiModule && (pureInit[name] || !provided ||
		name == "random_get" && !v.granted("random", "bytes"))
	if !pure && rec.impure == "" {
		rec.impure = module + "." + name
	}
}

// snapshot returns the state v's first instance is in after its
// initializers, or nil and why a snapshot would not be that state. v was
// made with the record rec and the meter's shape sh.
func (v *version) snapshot(ctx context.Context, sh *meterShape, rec *initRecord) (*native.Snapshot, string, error) {
	if sh.stateful != "" {
		return nil, sh.stateful, nil
	}
	if rec.impure != "" {
		return nil, "its initializers call " + rec.impure, nil
	}
	in := <-v.idle
	defer func() { v.idle <- in }()
	// What New leaves: an instance whose initializers did not run.
	fresh, err := v.wr.InstantiateModule(ctx, v.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, "", fmt.Errorf("instantiate: %w", err)
	}
	defer fresh.Close(context.Background())
	base, _ := fresh.Memory().Read(0, fresh.Memory().Size())
	mem, _ := in.mod.Memory().Read(0, in.mod.Memory().Size())
	s := &native.Snapshot{Pages: uint32(len(mem) >> 16), Runs: diffRuns(base, mem), Clock: in.wasi.virtual}
	for _, g := range rec.globals {
		eg := in.mod.ExportedGlobal(preinitGlobal + strconv.FormatUint(uint64(g), 10))
		if eg == nil {
			return nil, "", fmt.Errorf("global %d was not exported", g)
		}
		s.Globals = append(s.Globals, native.Global{Index: g, Value: eg.Get()})
	}
	// Refusals counted in the run (only random_get's can be: any other
	// comes from an impure call), replayed when an instance starts.
	v.deniedMu.Lock()
	for _, what := range slices.Sorted(maps.Keys(v.denied)) {
		if what != "random.bytes" {
			v.deniedMu.Unlock()
			return nil, "its initializers were refused " + what, nil
		}
		for range v.denied[what] {
			s.Denied = append(s.Denied, what)
		}
	}
	v.deniedMu.Unlock()
	return s, "", nil
}

// snapshotGap is how many equal bytes end a run of a snapshot's memory:
// fewer would cost more in Run headers than in bytes copied.
const snapshotGap = 16

// diffRuns returns the runs of mem that differ from base (zero past its
// end; mem is at least as long).
func diffRuns(base, mem []byte) []native.Run {
	differs := func(i int) bool {
		if i < len(base) {
			return mem[i] != base[i]
		}
		return mem[i] != 0
	}
	var runs []native.Run
	for i := 0; i < len(mem); {
		if !differs(i) {
			i++
			continue
		}
		end, same := i+1, 0
		for k := end; k < len(mem) && same < snapshotGap; k++ {
			if differs(k) {
				end, same = k+1, 0
			} else {
				same++
			}
		}
		runs = append(runs, native.Run{Off: uint32(i), Data: string(mem[i:end])})
		i = end
	}
	return runs
}

// exportGlobals adds an export (preinitGlobal and the index) of each of
// globals to module, for PrepareNative's run to read them.
func exportGlobals(module []byte, globals []uint32) ([]byte, error) {
	exports := func(body []byte, n uint32) []byte {
		b := binary.AppendUvarint(nil, uint64(n)+uint64(len(globals)))
		b = append(b, body...)
		for _, g := range globals {
			b = appendName(b, preinitGlobal+strconv.FormatUint(uint64(g), 10))
			b = append(b, 3)
			b = binary.AppendUvarint(b, uint64(g))
		}
		return b
	}
	out := append([]byte(nil), module[:8]...)
	section := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	r := &wreader{b: module, off: 8}
	done := false
	for r.off < len(r.b) {
		id := r.byte()
		body := r.sub(r.u32())
		if r.err != nil {
			return nil, r.err
		}
		if !done && sectionRank(id) > sectionRank(7) {
			section(7, exports(nil, 0))
			done = true
		}
		if id == 7 {
			n := body.count()
			section(7, exports(body.b[body.off:], n))
			done = true
			continue
		}
		section(id, body.b)
	}
	if !done {
		section(7, exports(nil, 0))
	}
	return out, r.err
}

// snapshotFor returns the snapshot v's native instances start from, or
// nil when they run their initializers: v has none, or v's grants would
// have shown the initializers something else. random_get is the one
// import that answers an initializer according to the grants (wasiRandom).
func (v *version) snapshotFor() *native.Snapshot {
	if v.nat == nil || v.nat.Snapshot == nil || v.granted("random", "bytes") {
		return nil
	}
	return v.nat.Snapshot
}

// restore puts a new native instance (New ran, no initializer) in the
// state of s. Its memory is extended in place: translate has New
// allocate it with room for the snapshot and for what reserveMemory
// gives a memory whose initializers run (they grow it within that room).
func (n *nativeInstance) restore(s *native.Snapshot, in *instance) error {
	v, p := n.v, n.inst.Memory()
	size := uint64(s.Pages) << 16
	if size < uint64(len(*p)) || s.Pages > v.limits.MemoryPages {
		return fmt.Errorf("snapshot of %d pages for a memory of %d bytes under a limit of %d pages", s.Pages, len(*p), v.limits.MemoryPages)
	}
	mem := *p
	if uint64(cap(mem)) >= size {
		// In place: New made the capacity (translate's memoryCapacity),
		// zeroed, and nothing has run.
		mem = mem[:size]
	} else {
		mem = make([]byte, size, max(size, room(len(mem), v.limits.MemoryPages)))
		copy(mem, *p)
	}
	for _, r := range s.Runs {
		if uint64(r.Off)+uint64(len(r.Data)) > size {
			return fmt.Errorf("snapshot run of %d bytes at %#x outside its memory", len(r.Data), r.Off)
		}
		copy(mem[r.Off:], r.Data)
	}
	*p = mem
	for _, g := range s.Globals {
		n.inst.SetGlobal(g.Index, g.Value)
	}
	in.wasi.virtual = s.Clock
	n.restored = true
	// As wasiRandom counted them in the initializers.
	for _, what := range s.Denied {
		v.deny(what, false, slog.LevelDebug)
	}
	return nil
}
