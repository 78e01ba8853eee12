//go:build nativegen

package core

import (
	"context"
	"strings"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"

	// The runtime tests' translations (make runtime-prep: go run
	// ./runtime/internal/nativegen -out build/_native/rt), the edge
	// fixture among them.
	_ "github.com/teastick/teastick/build/_native/rt"
)

// measuredEngines returns the engine of each actor event on pcr, by name
// (the last one of each name).
func measuredEngines(t *testing.T, m *measure.Measurer, pcr uint32) map[string]measure.Engine {
	t.Helper()
	out := map[string]measure.Engine{}
	for _, e := range m.Events() {
		if e.PCR != pcr || e.Type != eventlog.EV_EVENT_TAG {
			continue
		}
		tag, payload, err := eventlog.ParseTagged(e.Data)
		if err != nil || tag != eventlog.TagActor {
			continue
		}
		var a measure.Actor
		if err := a.UnmarshalBinary(payload); err != nil {
			t.Fatal(err)
		}
		out[a.Name] = a.Engine
	}
	return out
}

// TestNativeEngineMeasured: an entry marked native whose CID this binary
// holds a translation of runs natively, is not fetched from the box, and
// is measured into PCR 9 as native; the same module not marked, and an
// upgrade to a CID the binary holds no translation of (still marked),
// run in the interpreter and are measured so.
func TestNativeEngineMeasured(t *testing.T) {
	box := &faultBox{}
	edgeCode := actortest.Wat(t, "edge")
	edge := box.put(edgeCode)
	// The same module with a custom section (id 0, name "x"): another
	// CID, which no translation has.
	other := box.put(append(append([]byte{}, edgeCode...), 0, 2, 1, 'x'))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, log := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "fast", CID: edge, Native: true, Grants: []string{"log"}},
		manifest.Actor{Name: "slow", CID: edge, Grants: []string{"log"}},
	)); err != nil {
		t.Fatal(err)
	}
	engines := map[string]string{}
	for _, a := range s.Status().Actors {
		engines[a.Name] = a.Engine
	}
	if engines["fast"] != "native" || engines["slow"] == "native" {
		t.Fatalf("engines %v, want fast native and slow not; console:\n%s", engines, log)
	}
	if got := measuredEngines(t, cfg.Measurer, measure.PCRBootActors); got["fast"] != measure.EngineNative || got["slow"] != measure.EngineWasm {
		t.Fatalf("PCR 9 measured %v, want fast native and slow wasm", got)
	}
	if !strings.Contains(log.String(), "actor: fast "+edge+" native, 0 bytes, fetched in 0 ms") {
		t.Errorf("the console does not say fast runs natively without a fetch:\n%s", log)
	}
	box.mu.Lock()
	fetches := box.fetches[edge]
	box.mu.Unlock()
	if fetches != 1 { // slow's fetch only
		t.Errorf("%d fetches of %s, want 1 (the interpreted entry's)", fetches, edge)
	}
	code, out := call(t, s.Handler(), "POST", "/v1/actors/fast/invoke", `{"operation":"echo","payload":"aGk="}`)
	if code != 200 || out["result"] != "aGk=" {
		t.Fatalf("invoke fast: %d %v", code, out)
	}

	if err := s.Upgrade(context.Background(), sign(t, 2,
		manifest.Actor{Name: "fast", CID: other, Native: true, Grants: []string{"log"}},
		manifest.Actor{Name: "slow", CID: edge, Grants: []string{"log"}},
	)); err != nil {
		t.Fatal(err)
	}
	if got := measuredEngines(t, cfg.Measurer, measure.PCRRuntime); got["fast"] != measure.EngineWasm {
		t.Fatalf("PCR 10 measured %v, want fast (not compiled in) under wazero", got)
	}
	for _, a := range s.Status().Actors {
		if a.Name == "fast" && a.Engine == "native" {
			t.Fatalf("the upgraded fast runs natively: %+v", a)
		}
	}
	if !strings.Contains(log.String(), "actor: fast now "+other+" (interpreter)") && !strings.Contains(log.String(), "actor: fast now "+other+" (compiler)") {
		t.Errorf("the console does not name the upgrade's engine:\n%s", log)
	}
}
