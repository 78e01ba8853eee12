package runtime_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
)

// An initializer runs without capabilities, granted or not: the
// initcaps fixture's _initialize calls kv.put and reads the real-time
// clock with both granted, and is refused (counted and logged as such)
// and sees the virtual clock; the same calls from __guest_call work.
// Before the fix the initializer's kv.put went through: the actor wrote
// to its store, and could have signed with the stick's key, before the
// core measured it.
func TestInitializerWithoutCapabilities(t *testing.T) {
	now := time.Unix(1700000000, 5)
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			kv := runtime.NewMemKV(runtime.DefaultKVLimits)
			r, lb := newRuntime(t, runtime.Config{Engine: e, KV: kv, Now: func() time.Time { return now }})
			load(t, r, "initcaps", actortest.Wat(t, "initcaps"), []string{"kv", "clock"}, runtime.Limits{})

			// What the initializer got.
			got, err := invoke(r, "initcaps", "init", nil)
			if err != nil {
				t.Fatal(err)
			}
			clock, ok, msg := record(t, got)
			if ok {
				t.Fatal("the initializer's kv.put succeeded")
			}
			if !strings.Contains(msg, runtime.ErrDenied.Error()) || !strings.Contains(msg, "initializer") {
				t.Fatalf("initializer's error %q", msg)
			}
			if clock == uint64(now.UnixNano()) || clock >= uint64(time.Second) {
				t.Fatalf("initializer read the clock %d: not the virtual clock", clock)
			}
			if _, err := kv.Get("initcaps", "init"); !errors.Is(err, runtime.ErrKVNotFound) {
				t.Fatalf("kv after the initializer: %v, want not found", err)
			}
			info := infoOf(t, r, "initcaps")
			if info.Stats.Denied["kv.put"] != 1 {
				t.Fatalf("denied %v, want kv.put once", info.Stats.Denied)
			}
			if !strings.Contains(lb.String(), "capability not granted to an initializer") {
				t.Fatalf("refusal not logged:\n%s", lb.String())
			}

			// The same calls in a call.
			got, err = invoke(r, "initcaps", "call", nil)
			if err != nil {
				t.Fatal(err)
			}
			clock, ok, msg = record(t, got)
			if !ok {
				t.Fatalf("kv.put in a call failed: %s", msg)
			}
			if clock != uint64(now.UnixNano()) {
				t.Fatalf("clock in a call %d, want %d", clock, now.UnixNano())
			}
			if v, err := kv.Get("initcaps", "call"); err != nil || string(v) != "C" {
				t.Fatalf("kv after the call: %q, %v", v, err)
			}
			if d := infoOf(t, r, "initcaps").Stats.Denied; d["kv.put"] != 1 {
				t.Fatalf("denied %v after the call, want kv.put once", d)
			}
		})
	}
}

// record decodes the initcaps fixture's record: clock(8, LE) || error
// length(4, LE) || __host_call result(1) || error text.
func record(t *testing.T, b []byte) (clock uint64, ok bool, msg string) {
	t.Helper()
	if len(b) < 13 || len(b) != 13+int(binary.LittleEndian.Uint32(b[8:])) {
		t.Fatalf("record %x", b)
	}
	return binary.LittleEndian.Uint64(b), b[12] == 1, string(b[13:])
}

func infoOf(t *testing.T, r *runtime.Runtime, name string) runtime.Info {
	t.Helper()
	for _, in := range r.Actors() {
		if in.Name == name {
			return in
		}
	}
	t.Fatalf("actor %s not loaded", name)
	return runtime.Info{}
}
