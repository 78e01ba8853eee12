package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/teastick/teastick/runtime/actortest"
)

var meterEngines = []Engine{EngineInterpreter, EngineCompiler}

// loadVersion loads a module as an actor version, as Load does.
func loadVersion(t testing.TB, e Engine, m []byte, lim Limits) *version {
	t.Helper()
	r := New(Config{Engine: e, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { r.Close() })
	v, err := r.newVersion(context.Background(), Spec{Name: "m", CID: actortest.CID(m), Module: m, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.retire)
	return v
}

// within runs f and fails the test if it has not returned after a minute:
// without the meter, the calls below never return.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s: still running after a minute", what)
	}
}

// The actor: an empty loop in __guest_call. The meter's yield ends
// it at the deadline (wazero's watcher is off: the versions below are
// configured exactly as Load configures them), the instance is replaced,
// and the actor answers again.
func TestMeterEndsSpin(t *testing.T) {
	for _, e := range meterEngines {
		t.Run(e.String(), func(t *testing.T) {
			v := loadVersion(t, e, actortest.Wat(t, "spin"), Limits{Timeout: 100 * time.Millisecond})
			if !v.metered {
				t.Fatal("a version loaded unmetered")
			}
			before := v.meter.yields.Load()
			var err error
			within(t, "spin", func() { _, err = v.invoke(context.Background(), "forever", nil) })
			if !errors.Is(err, ErrDeadline) {
				t.Fatalf("spin: %v, want ErrDeadline", err)
			}
			if v.meter.yields.Load() == before {
				t.Fatal("the call ended without the meter yielding")
			}
			if _, err := v.invoke(context.Background(), "ping", nil); err != nil {
				t.Fatalf("ping after the deadline: %v", err)
			}
			if s := v.stats(); s.Faults != 1 || s.Instances != 2 {
				t.Fatalf("stats %+v, want one fault and a second instance", s)
			}
		})
	}
}

// Initializers run under the meter and the deadline too: an actor whose
// _initialize never returns fails to load.
func TestMeterEndsSpinningInitializer(t *testing.T) {
	for _, e := range meterEngines {
		t.Run(e.String(), func(t *testing.T) {
			m := actortest.Wat(t, "initspin")
			r := New(Config{Engine: e, InitTimeout: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer r.Close()
			var err error
			within(t, "load", func() {
				err = r.Load(context.Background(), Spec{Name: "m", CID: actortest.CID(m), Module: m, Limits: Limits{Timeout: 100 * time.Millisecond}})
			})
			if !errors.Is(err, ErrInvalidModule) || !errors.Is(err, ErrDeadline) || !strings.Contains(err.Error(), "_initialize") {
				t.Fatalf("load: %v, want ErrInvalidModule and ErrDeadline from _initialize", err)
			}
		})
	}
}

// An initializer gets Config.InitTimeout, not the actor's call timeout:
// on the stick it shares the core with the calls in flight, and a pool
// refilled under load must not fail because of it.
func TestInitializerOutlastsCallTimeout(t *testing.T) {
	for _, e := range meterEngines {
		t.Run(e.String(), func(t *testing.T) {
			m := actortest.Wat(t, "initslow")
			r := New(Config{Engine: e, InitTimeout: time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer r.Close()
			lim := Limits{Timeout: time.Millisecond, MaxConcurrent: 2}
			within(t, "load", func() {
				if err := r.Load(context.Background(), Spec{Name: "m", CID: actortest.CID(m), Module: m, Limits: lim}); err != nil {
					t.Fatalf("load with an initializer longer than the call timeout: %v", err)
				}
			})
			// Two calls at once: the second needs a new instance.
			errs := make(chan error, 2)
			for range 2 {
				go func() {
					_, err := r.Invoke(context.Background(), "m", "op", nil)
					errs <- err
				}()
			}
			for range 2 {
				if err := <-errs; err != nil && !errors.Is(err, ErrBusy) {
					t.Errorf("invoke: %v", err)
				}
			}
		})
	}
}

// Long finite work: recursion with no loop at all (only the function-entry
// check bounds it) and a long counting loop.
func TestMeterEndsLongCompute(t *testing.T) {
	for _, e := range meterEngines {
		t.Run(e.String(), func(t *testing.T) {
			// Long enough for the short calls below under -race on a
			// loaded machine.
			v := loadVersion(t, e, actortest.Wat(t, "compute"), Limits{Timeout: time.Second})
			for _, c := range []struct {
				op      string
				payload []byte
			}{
				{"fib", []byte{60}},                       // 2^41 calls
				{"count", []byte{0xff, 0xff, 0xff, 0xff}}, // 2^32 iterations
			} {
				var err error
				within(t, c.op, func() { _, err = v.invoke(context.Background(), c.op, c.payload) })
				if !errors.Is(err, ErrDeadline) {
					t.Fatalf("%s: %v, want ErrDeadline", c.op, err)
				}
			}
			out, err := v.invoke(context.Background(), "fib", []byte{15})
			if err != nil || len(out) != 8 || binary.LittleEndian.Uint64(out) != 610 {
				t.Fatalf("fib(15) after the deadlines: %x %v", out, err)
			}
			if _, err := v.invoke(context.Background(), "count", []byte{0x10, 0x27, 0, 0}); err != nil {
				t.Fatalf("count 10000: %v", err)
			}
		})
	}
}

// The yield runs at a bounded interval of work: with a fixed slice of S
// fuel, a loop of N iterations of the seven-instruction loop in
// compute.wat yields 7N/S times, give or take the entry checks.
func TestMeterYieldsAtBoundedInterval(t *testing.T) {
	const n, slice = 1_000_000, 7000
	for _, e := range meterEngines {
		t.Run(e.String(), func(t *testing.T) {
			v := loadVersion(t, e, actortest.Wat(t, "compute"), Limits{Timeout: time.Minute})
			v.meter.fixed = slice
			before := v.meter.yields.Load()
			if _, err := v.invoke(context.Background(), "count", binary.LittleEndian.AppendUint32(nil, n)); err != nil {
				t.Fatal(err)
			}
			got := v.meter.yields.Load() - before
			// 7n fuel in the loop, a few dozen at the entries of
			// __guest_call and $count, and the first check of a fresh
			// instance yields at once (its fuel starts at zero).
			if lo, hi := uint64(7*n/slice), uint64(7*n/slice+3); got < lo || got > hi {
				t.Fatalf("%d yields for %d iterations of 7 instructions with a slice of %d, want %d..%d", got, n, slice, lo, hi)
			}
		})
	}
}

// What runs during a call's yields is counted as given, not as the
// call's own: on one P (the stick's one core) a goroutine that works 300
// us each time it gets the core runs only while the metered call yields,
// and Stats.Given holds at least that work.
func TestMeterCountsTimeGiven(t *testing.T) {
	const n, slice, turn = 1_000_000, 7000, 300 * time.Microsecond
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))
	for _, e := range meterEngines {
		t.Run(e.String(), func(t *testing.T) {
			v := loadVersion(t, e, actortest.Wat(t, "compute"), Limits{Timeout: time.Minute})
			v.meter.fixed = slice
			var stop atomic.Bool
			var turns atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for !stop.Load() {
					for t0 := time.Now(); time.Since(t0) < turn; {
					}
					turns.Add(1)
					goruntime.Gosched()
				}
			}()
			before := v.stats().Given
			start := time.Now()
			_, err := v.invoke(context.Background(), "count", binary.LittleEndian.AppendUint32(nil, n))
			wall := time.Since(start)
			stop.Store(true)
			<-done
			if err != nil {
				t.Fatal(err)
			}
			given := v.stats().Given - before
			// The goroutine may take one turn after the call returned,
			// and one may straddle its end.
			k := turns.Load()
			if k < 10 {
				t.Fatalf("the other goroutine ran %d times during %d yields", k, v.meter.yields.Load())
			}
			if min := time.Duration(k-2) * turn; given < min || given > wall {
				t.Fatalf("given %v for %d turns of %v in a call of %v, want %v..%v", given, k, turn, wall, min, wall)
			}
			t.Logf("%d turns of %v, given %v of %v", k, turn, given, wall)
		})
	}
}

func TestMeterRefusesReservedImport(t *testing.T) {
	m := actortest.Wat(t, "meterimport")
	r := New(Config{Engine: EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer r.Close()
	_, err := r.newVersion(context.Background(), Spec{Name: "m", CID: actortest.CID(m), Module: m})
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("got %v, want ErrInvalidModule naming the reserved module", err)
	}
}

// A data segment at a negative i32.const offset: wazero refuses the module
// as it is, and so must the runtime, whose merge of data segments once
// read the offset as unsigned (-1 as 127) and served it.
func TestDataSegmentNegativeOffset(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"datasign1", "datasign2", "datasign3"} {
		t.Run(name, func(t *testing.T) {
			m := actortest.Wat(t, name)
			wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
			defer wr.Close(ctx)
			if _, err := wr.Instantiate(ctx, m); err == nil {
				t.Fatal("wazero itself takes the fixture: it tests nothing")
			}
			r := New(Config{Engine: EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer r.Close()
			if err := r.Load(ctx, Spec{Name: "d", CID: actortest.CID(m), Module: m}); !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("load: %v, want ErrInvalidModule", err)
			}
		})
	}
}

func TestNextSliceBounds(t *testing.T) {
	for _, c := range []struct {
		slice   int64
		elapsed time.Duration
	}{
		{1 << 13, 0}, {1 << 13, time.Nanosecond}, {1 << 13, time.Hour}, {meterMaxSlice, time.Nanosecond},
		{meterMinSlice, time.Hour}, {1 << 20, time.Millisecond}, {1 << 20, 2 * time.Millisecond},
	} {
		got := nextSlice(c.slice, c.elapsed)
		if got < meterMinSlice || got > meterMaxSlice || got > 2*c.slice || got < c.slice/2 && got != meterMinSlice {
			t.Errorf("nextSlice(%d, %v) = %d", c.slice, c.elapsed, got)
		}
	}
	if got := nextSlice(1<<20, 2*time.Millisecond); got != 1<<19 {
		t.Errorf("a slice that took twice the target: %d, want half", got)
	}
}

// meterSeeds are every WAT fixture and, unless -short, the Go examples.
func meterSeeds(t testing.TB) [][]byte {
	files, _ := filepath.Glob(filepath.Join(actortest.Dir(), "testdata", "*.wat"))
	var seeds [][]byte
	for _, f := range files {
		seeds = append(seeds, actortest.Wat(t, strings.TrimSuffix(filepath.Base(f), ".wat")))
	}
	if len(seeds) == 0 {
		t.Fatal("no WAT fixtures")
	}
	if _, err := os.Stat(filepath.Join(actortest.Dir(), "examples", "kernel")); err == nil && !testing.Short() {
		seeds = append(seeds, actortest.GoActor(t, "kernel"))
	}
	return seeds
}

// compiles reports whether wazero, configured as the runtime configures
// it, compiles m.
func compiles(m []byte) error {
	ctx := context.Background()
	wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
	defer wr.Close(ctx)
	_, err := wr.CompileModule(ctx, m)
	return err
}

// FuzzMeter: the meter never panics; on a module wazero takes it succeeds
// (unless the module imports the meter's reserved module) and wazero takes
// what it returns; on a module wazero refuses, wazero refuses what it
// returns too (the rewrite never makes an invalid module valid); and the
// rewrite is deterministic.
func FuzzMeter(f *testing.F) {
	for _, m := range meterSeeds(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, module []byte) {
		checked, err := precheck(module)
		if err != nil {
			return
		}
		out, merr := meter(checked)
		origErr := compiles(checked)
		if merr != nil {
			if origErr == nil && !strings.Contains(merr.Error(), meterModule) {
				t.Fatalf("meter refused a module wazero takes: %v", merr)
			}
			return
		}
		again, _ := meter(checked)
		if !bytes.Equal(out, again) {
			t.Fatal("the rewrite is not deterministic")
		}
		outErr := compiles(out)
		switch {
		case origErr == nil && outErr != nil:
			t.Fatalf("wazero takes the module but not its metered rewrite: %v", outErr)
		case origErr != nil && outErr == nil:
			t.Fatalf("wazero refuses the module (%v) but takes its metered rewrite", origErr)
		}
	})
}
