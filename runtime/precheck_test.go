package runtime

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/teastick/teastick/runtime/actortest"
)

// Merging data segments must leave memory exactly as the original module
// initializes it.
func TestCoalesceDataIsExact(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"echo", "notary"} {
		orig := actortest.GoActor(t, name)
		checked, err := precheck(orig)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(checked, orig) {
			t.Fatalf("%s: precheck changed nothing", name)
		}
		mem := func(m []byte) []byte {
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
			defer r.Close(ctx)
			cm, err := r.CompileModule(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			// Segments are applied at instantiation; read them through a
			// fresh instance of the module with imports satisfied.
			v := &version{rt: New(Config{}), name: "x", wr: r, compiled: cm, limits: DefaultLimits}
			v.limits.MemoryPages = 1000
			if err := v.instantiateHost(ctx); err != nil {
				t.Fatal(err)
			}
			inst, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := inst.Memory().Read(0, inst.Memory().Size())
			return bytes.Clone(b)
		}
		a, b := mem(orig), mem(checked)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: memory differs after merging data segments (%d vs %d bytes)", name, len(a), len(b))
		}
	}
}
