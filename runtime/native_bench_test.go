//go:build nativegen

package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/internal/kernel"
)

// The compute kernel (internal/kernel) as native Go, as the kernel actor
// translated to Go (metered, as it runs) and as the same actor in wazero's
// interpreter (the stick's engine), alternately in one run (issue 18's
// target: x-native at most 6 on the host). x-interpreter is the
// interpreter's ratio to native Go in the same run.
func BenchmarkNativeKernel(b *testing.B) {
	const n, rounds = 48, 2
	want := kernel.Run(n, rounds)
	r, _ := newRuntime(b, runtime.Config{Engine: runtime.EngineInterpreter})
	m := actortest.GoActor(b, "kernel")
	c := actortest.CID(m)
	lim := runtime.Limits{Timeout: time.Minute}
	for _, s := range []struct {
		name   string
		native bool
	}{{"translated", true}, {"interpreted", false}} {
		if err := r.Load(context.Background(), runtime.Spec{Name: s.name, CID: c, Module: m, Limits: lim, Native: s.native}); err != nil {
			b.Fatal(err)
		}
	}
	if in, _ := r.Actor("translated"); in.Engine != "native" {
		b.Fatalf("kernel engine %q, want native (run make runtime-prep)", in.Engine)
	}
	d, cpu, cpuOK := timeSides(b, kernelSides(b, r, n, rounds, want, "translated", "interpreted"))
	if cpuOK {
		b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "x-native-cpu")
		b.ReportMetric(float64(cpu[2])/float64(cpu[0]), "x-interpreter-cpu")
	}
	b.ReportMetric(perOp(b, d[0]), "go-ns/op")
	b.ReportMetric(perOp(b, d[1]), "translated-ns/op")
	b.ReportMetric(perOp(b, d[2]), "interpreter-ns/op")
	b.ReportMetric(float64(d[1])/float64(d[0]), "x-native")
	b.ReportMetric(float64(d[2])/float64(d[0]), "x-interpreter")
}

// An empty call natively and in the interpreter: the runtime's own
// overhead per call.
func BenchmarkNativeInvokeEmpty(b *testing.B) {
	for _, nat := range []bool{true, false} {
		name := "interpreter"
		if nat {
			name = "native"
		}
		b.Run(name, func(b *testing.B) {
			r, _ := newRuntime(b, runtime.Config{Engine: runtime.EngineInterpreter})
			m := actortest.Wat(b, "edge")
			if err := r.Load(context.Background(), runtime.Spec{Name: "edge", CID: actortest.CID(m), Module: m, Native: nat}); err != nil {
				b.Fatal(err)
			}
			if in, _ := r.Actor("edge"); in.Engine != name {
				b.Fatalf("engine %q, want %q", in.Engine, name)
			}
			for b.Loop() {
				if _, err := invoke(r, "edge", "nothing", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
