package runtime_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/internal/kernel"
	"github.com/teastick/teastick/runtime/internal/meteroff"
)

var benchEngines = []runtime.Engine{runtime.EngineInterpreter, runtime.EngineCompiler}

// The cost of a call that does nothing: the runtime's own overhead
// (pool, deadline, waPC request and response).
func BenchmarkInvokeEmpty(b *testing.B) {
	for _, e := range benchEngines {
		b.Run(e.String(), func(b *testing.B) {
			r, _ := newRuntime(b, runtime.Config{Engine: e})
			load(b, r, "edge", actortest.Wat(b, "edge"), nil, runtime.Limits{})
			for b.Loop() {
				if _, err := invoke(r, "edge", "nothing", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ratioRun times native() and actor() alternately in one run and reports
// both and their ratio. One untimed call of each comes first: the first
// call's memory growth and the guest's first allocation of its request
// buffer are cold start (BenchmarkColdStart), and at -benchtime 20x they
// would be most of the figure.
func ratioRun(b *testing.B, native func(), actor func()) {
	var tn, ta time.Duration
	native()
	actor()
	// The garbage of loading (compiling a Go actor makes tens of MiB)
	// would otherwise be collected during the first rounds, on either
	// side at random.
	goruntime.GC()
	for b.Loop() {
		t0 := time.Now()
		native()
		t1 := time.Now()
		actor()
		ta += time.Since(t1)
		tn += t1.Sub(t0)
	}
	b.ReportMetric(float64(tn.Nanoseconds())/float64(b.N), "native-ns/op")
	b.ReportMetric(float64(ta.Nanoseconds())/float64(b.N), "actor-ns/op")
	b.ReportMetric(float64(ta)/float64(tn), "x-native")
}

// The compute kernel (internal/kernel) as native Go, as the kernel actor
// (metered, as every actor runs) and as the same actor loaded without the
// meter (internal/meteroff, benchmarks only), alternately in one run.
// x-native is the metered actor's ratio, x-native-unmetered the ratio
// without the meter, meter-% what the meter adds to the actor's time
// (wall clock) and meter-cpu-% to the process's CPU time. The unmetered
// actor runs as every actor ran before the meter: with wazero's deadline
// watcher, whose loop-header checks cost the compiler more than the
// meter's.
func BenchmarkKernel(b *testing.B) {
	const n, rounds = 48, 2
	want := kernel.Run(n, rounds)
	for _, e := range benchEngines {
		b.Run(e.String(), func(b *testing.B) {
			r, _ := newRuntime(b, runtime.Config{Engine: e})
			m := actortest.GoActor(b, "kernel")
			load(b, r, "kernel", m, nil, runtime.Limits{Timeout: time.Minute})
			err := r.Load(meteroff.Context(context.Background()), runtime.Spec{Name: "kernel-unmetered", CID: actortest.CID(m), Module: m, Limits: runtime.Limits{Timeout: time.Minute}})
			if err != nil {
				b.Fatal(err)
			}
			// As ratioRun, with the unmetered actor as a third side. The
			// process's CPU time is taken too (on Linux; run with -cpu 1):
			// the meter's cost is some ten percent, and on a shared
			// machine the wall time of one side swings more than that.
			d, cpu, cpuOK := timeSides(b, kernelSides(b, r, n, rounds, want, "kernel", "kernel-unmetered"))
			if cpuOK {
				b.ReportMetric(100*(float64(cpu[1])/float64(cpu[2])-1), "meter-cpu-%")
			}
			b.ReportMetric(perOp(b, d[0]), "native-ns/op")
			b.ReportMetric(perOp(b, d[1]), "actor-ns/op")
			b.ReportMetric(perOp(b, d[2]), "unmetered-ns/op")
			b.ReportMetric(float64(d[1])/float64(d[0]), "x-native")
			b.ReportMetric(float64(d[2])/float64(d[0]), "x-native-unmetered")
			b.ReportMetric(100*(float64(d[1])/float64(d[2])-1), "meter-%")
		})
	}
}

// kernelSides are the sides of a kernel comparison: the kernel as native
// Go first, then each named kernel actor on r, every one checked against
// want.
func kernelSides(b *testing.B, r *runtime.Runtime, n, rounds int, want uint64, actors ...string) []func() {
	p := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(n)), uint32(rounds))
	sides := []func(){func() {
		if kernel.Run(n, rounds) != want {
			b.Fatal("native kernel changed its answer")
		}
	}}
	for _, name := range actors {
		sides = append(sides, func() {
			out, err := invoke(r, name, "run", p)
			if err != nil || binary.BigEndian.Uint64(out) != want {
				b.Fatalf("actor %s: %x %v", name, out, err)
			}
		})
	}
	return sides
}

// timeSides runs each side once to warm up, then all of them alternately
// in every b.Loop iteration, and returns each side's total wall-clock time
// and process CPU time (cpuOK false where the CPU time is not available:
// processCPU).
func timeSides(b *testing.B, sides []func()) (d, cpu []time.Duration, cpuOK bool) {
	d, cpu = make([]time.Duration, len(sides)), make([]time.Duration, len(sides))
	for _, f := range sides {
		f()
	}
	goruntime.GC()
	cpuOK = true
	for b.Loop() {
		for i, f := range sides {
			c0, ok0 := processCPU()
			t := time.Now()
			f()
			d[i] += time.Since(t)
			c1, ok1 := processCPU()
			cpu[i] += c1 - c0
			cpuOK = cpuOK && ok0 && ok1
		}
	}
	return d, cpu, cpuOK
}

// perOp is x per benchmark iteration, in nanoseconds.
func perOp(b *testing.B, x time.Duration) float64 { return float64(x.Nanoseconds()) / float64(b.N) }

// SHA-256 of 1 MiB through the crypto capability (the notary's "hash")
// against native Go.
//
// Run it with -cpu 1,2: with one P (the stick has one core) the figure is
// the capability's own cost, copying the request into guest memory and
// the call. With idle Ps it also holds two thread wake-ups per call:
// wazero starts a goroutine per call to watch the deadline
// (WithCloseOnContextDone) and ends it after, and each makes the Go
// scheduler wake a parked thread for the idle P. On a VM where waking a
// vCPU is slow that is tens of microseconds each.
func BenchmarkSHA256MiB(b *testing.B) {
	data := bytes.Repeat([]byte("teastick"), 1<<17)
	want := sha256.Sum256(data)
	// The notary is a Go guest; the edge fixture's "call" passes the
	// payload straight to the capability (the capability's own cost, no Go
	// runtime in the guest).
	for _, g := range []struct {
		name, op string
		module   func(testing.TB) []byte
		payload  []byte
	}{
		{"go", "hash", func(b testing.TB) []byte { return actortest.GoActor(b, "notary") }, data},
		{"wat", "call", func(b testing.TB) []byte { return actortest.Wat(b, "edge") }, hostCall("crypto", "sha256", data)},
	} {
		for _, e := range benchEngines {
			b.Run(g.name+"/"+e.String(), func(b *testing.B) {
				r, _ := newRuntime(b, runtime.Config{Engine: e})
				load(b, r, "hasher", g.module(b), []string{"crypto.sha256"}, runtime.Limits{MaxRequest: 2 << 20, MemoryPages: 512})
				b.SetBytes(int64(len(data)))
				ratioRun(b, func() {
					if sha256.Sum256(data) != want {
						b.Fatal("bad digest")
					}
				}, func() {
					out, err := invoke(r, "hasher", g.op, g.payload)
					if err != nil || !bytes.Equal(out, want[:]) {
						b.Fatalf("actor hash: %x %v", out, err)
					}
				})
			})
		}
	}
}

// Cold start of each example: CID check, compile, instantiate (Go runtime
// initialization included) and a first call.
func BenchmarkColdStart(b *testing.B) {
	for _, e := range benchEngines {
		for _, name := range []string{"echo", "notary", "wordcount"} {
			b.Run(e.String()+"/"+name, func(b *testing.B) {
				m := actortest.GoActor(b, name)
				c := actortest.CID(m)
				for b.Loop() {
					r := runtime.New(runtime.Config{Engine: e, Log: quiet})
					if err := r.Load(context.Background(), runtime.Spec{Name: name, CID: c, Module: m}); err != nil {
						b.Fatal(err)
					}
					// Every example answers an unknown operation with an
					// actor error: a full call through the guest.
					if _, err := r.Invoke(context.Background(), name, "first-call", nil); err == nil {
						b.Fatal("unknown operation succeeded")
					}
					r.Close()
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/start")
			})
		}
	}
}
