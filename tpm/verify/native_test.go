package verify

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/measure"
)

// nativeEntry is entry marked native.
func nativeEntry(name, cidOf string) manifest.Actor {
	a := entry(name, cidOf)
	a.Native = true
	return a
}

// TestVerifyNativeEngine: an actor event saying the actor ran natively
// passes only for a manifest entry marked native whose CID is in the
// release's native table; an event under wazero passes for any entry, and
// for one marked native the verdict says why it did not run natively.
func TestVerifyNativeEngine(t *testing.T) {
	ca := t.TempDir()
	image := []byte("stick image")
	// echo and kv are marked native, only echo's CID is compiled in;
	// plain is not marked. v2 moves echo to a CID no image holds.
	boot := testSigned(1, nativeEntry("echo", "echo"), nativeEntry("kv", "kv"), entry("plain", "plain"))
	v2 := testSigned(2, nativeEntry("echo", "echo v2"), nativeEntry("kv", "kv"), entry("plain", "plain"))
	table := []NativeActor{{Name: "echo", CID: nameCID("echo")}, {Name: "plain", CID: nameCID("plain")}}
	type ev struct {
		m       measuring
		engine  measure.Engine
		upgrade bool
	}
	wasm := func(pcr uint32, name, cidOf string) ev { return ev{m: actorAt(pcr, name, cidOf, "log")} }
	native := func(pcr uint32, name, cidOf string) ev {
		return ev{m: actorAt(pcr, name, cidOf, "log"), engine: measure.EngineNative}
	}
	sep := ev{m: measuring{pcr: measure.PCRBootActors}}
	up := ev{m: measuring{pcr: measure.PCRRuntime, upgrade: v2}}
	// Events 0-13 are the boot's up to the keys event; the first actor
	// event is 14.
	for _, tc := range []struct {
		name   string
		steps  []ev
		table  []NativeActor
		fail   map[string]loc
		native []string // actors the verdict reports as native
		notes  []string // actors the verdict reports marked native but under wazero
	}{
		{name: "native entry in the table", steps: []ev{native(9, "echo", "echo"), wasm(9, "kv", "kv"), wasm(9, "plain", "plain"), sep},
			table: table, native: []string{"echo"}, notes: []string{"kv"}},
		{name: "native event for an entry not marked native", steps: []ev{native(9, "echo", "echo"), wasm(9, "kv", "kv"), native(9, "plain", "plain"), sep},
			table: table, fail: map[string]loc{CheckEngine: {9, 16}}},
		{name: "native CID not in the release's table", steps: []ev{native(9, "echo", "echo"), native(9, "kv", "kv"), sep},
			table: table, fail: map[string]loc{CheckEngine: {9, 15}}},
		{name: "native event and no table", steps: []ev{native(9, "echo", "echo"), sep},
			fail: map[string]loc{CheckEngine: {9, 14}}},
		{name: "upgraded actor not compiled in runs under wazero", steps: []ev{native(9, "echo", "echo"), sep, up, wasm(10, "echo", "echo v2")},
			table: table, native: []string{"echo"}, notes: []string{"echo"}},
		{name: "upgraded actor not compiled in claims native", steps: []ev{native(9, "echo", "echo"), sep, up, native(10, "echo", "echo v2")},
			table: table, fail: map[string]loc{CheckEngine: {10, 17}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := manifestedStick(t, ca, image)
			for _, st := range tc.steps {
				var err error
				switch {
				case st.m.upgrade != nil:
					err = s.m.MeasureUpgrade(st.m.upgrade)
				case st.m.name == "":
					err = s.m.Separator(st.m.pcr)
				default:
					err = s.m.MeasureActor(st.m.pcr, measure.Actor{Name: st.m.name, CID: nameCID(st.m.cidOf), Capabilities: st.m.grants, Engine: st.engine})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			ak := enrol(t, s)
			nonce := []byte("nonce-0123456789")
			evidence, err := s.att.Attest(nonce, s.ck, s.m.Log(), s.m.PCRs())
			if err != nil {
				t.Fatal(err)
			}
			ref := &Reference{Stage0: sha256.Sum256(testStage0), Events: BootEvents(sha256.Sum256(image), testConfig, testManifest),
				Boot: boot, Upgrades: [][]byte{v2}, Native: tc.table}
			v := Verify(evidence, Expect{AKPublic: ak, Nonce: nonce, ChannelKey: s.ck, Reference: ref})
			checkVerdict(t, v, tc.fail)
			if tc.fail != nil {
				return
			}
			var native, notes []string
			for _, e := range v.Engines {
				if e.Engine == measure.EngineNative {
					native = append(native, e.Name)
				}
				if e.Note != "" {
					notes = append(notes, e.Name)
				}
			}
			if strings.Join(native, ",") != strings.Join(tc.native, ",") || strings.Join(notes, ",") != strings.Join(tc.notes, ",") {
				t.Fatalf("verdict reports native %v and notes %v, want %v and %v:\n%s", native, notes, tc.native, tc.notes, v)
			}
			for _, c := range v.Checks {
				if c.Name == CheckEngine {
					t.Logf("%s", c)
				}
			}
		})
	}
}
