package runtime_test

import (
	"context"
	"errors"
	"testing"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

// Warm fills the pool up to max_concurrent, never above, and waits for no
// call in flight.
func TestWarm(t *testing.T) {
	kv := &spyKV{MemKV: runtime.NewMemKV(runtime.DefaultKVLimits), block: make(chan struct{})}
	r, _ := newRuntime(t, runtime.Config{KV: kv})
	load(t, r, "edge", actortest.Wat(t, "edge"), []string{"kv"}, runtime.Limits{MaxConcurrent: 3})
	ctx := context.Background()
	if _, _, err := r.Warm(ctx, "nobody", 2); !errors.Is(err, runtime.ErrUnknownActor) {
		t.Fatalf("unknown actor: %v", err)
	}
	started, linear, err := r.Warm(ctx, "edge", 10)
	if err != nil || started != 2 || linear < 2*65536 {
		t.Fatalf("warm to 10 with max_concurrent 3 (1 idle): started %d, linear %d, %v", started, linear, err)
	}
	if in, _ := r.Actor("edge"); in.Stats.Idle != 3 || in.Stats.Instances != 3 {
		t.Fatalf("idle %d, instances %d, want 3 and 3", in.Stats.Idle, in.Stats.Instances)
	}
	if started, _, err := r.Warm(ctx, "edge", 3); err != nil || started != 0 {
		t.Fatalf("warm a full pool: started %d, %v", started, err)
	}
	done := blockedCall(r, kv, "edge")
	if _, _, err := r.Warm(ctx, "edge", 3); !errors.Is(err, runtime.ErrBusy) {
		t.Fatalf("warm with a call in flight: %v", err)
	}
	close(kv.block)
	<-done
	// Every slot came back: Warm takes them all.
	if _, _, err := r.Warm(ctx, "edge", 3); err != nil {
		t.Fatalf("warm after the call: %v", err)
	}
	if _, err := invoke(r, "edge", "echo", nil); err != nil {
		t.Fatal(err)
	}
	if in, _ := r.Actor("edge"); in.Stats.Instances != 3 || in.Stats.Idle != 3 {
		t.Fatalf("instances %d, idle %d after warm and calls, want 3 and 3", in.Stats.Instances, in.Stats.Idle)
	}
}
