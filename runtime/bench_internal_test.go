package runtime

import (
	"context"
	"io"
	"log/slog"
	goruntime "runtime"
	"testing"

	"github.com/teastick/teastick/runtime/actortest"
)

// BenchmarkIdleInstance reports the Go heap an idle instance costs beyond
// its linear memory (the budget: 256 KiB), for each engine and
// actor.
func BenchmarkIdleInstance(b *testing.B) {
	mods := map[string][]byte{
		"wat-edge":  actortest.Wat(b, "edge"),
		"go-echo":   actortest.GoActor(b, "echo"),
		"go-notary": actortest.GoActor(b, "notary"),
	}
	for _, e := range []Engine{EngineInterpreter, EngineCompiler} {
		for name, m := range mods {
			b.Run(e.String()+"/"+name, func(b *testing.B) {
				r := New(Config{Engine: e, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
				defer r.Close()
				ctx := context.Background()
				v, err := r.newVersion(ctx, Spec{Name: "idle", CID: actortest.CID(m), Module: m, Limits: Limits{MaxConcurrent: 16}})
				if err != nil {
					b.Fatal(err)
				}
				defer v.retire()
				const n = 8
				var beyond float64
				for b.Loop() {
					var before, after goruntime.MemStats
					goruntime.GC()
					goruntime.ReadMemStats(&before)
					ins := make([]*instance, n)
					var linear uint64
					for i := range ins {
						if ins[i], err = v.newInstance(ctx); err != nil {
							b.Fatal(err)
						}
						linear += linearAllocation(ins[i].mod.Memory())
					}
					goruntime.GC()
					goruntime.ReadMemStats(&after)
					beyond = (float64(after.HeapAlloc) - float64(before.HeapAlloc) - float64(linear)) / n
					for _, in := range ins {
						in.mod.Close(ctx)
					}
				}
				b.ReportMetric(beyond/1024, "KiB-beyond-memory/instance")
			})
		}
	}
}
