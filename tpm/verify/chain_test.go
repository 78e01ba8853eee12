package verify

import (
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/measure"
)

// measuring is one measurement on PCR 9 or 10: an upgrade manifest, an
// actor (name at the CID of cidOf, with grants), or PCR 9's separator.
type measuring struct {
	pcr     uint32
	upgrade []byte
	name    string
	cidOf   string
	grants  []string
}

func actorAt(pcr uint32, name, cidOf string, grants ...string) measuring {
	return measuring{pcr: pcr, name: name, cidOf: cidOf, grants: grants}
}

// TestVerifyManifestChain: each actor event must be an entry (name, CID
// and grants) of the manifest in force when it was measured, and the
// upgrades must come in the reference's order; a CID some other manifest
// names does not do.
func TestVerifyManifestChain(t *testing.T) {
	ca := t.TempDir()
	image := []byte("stick image")
	boot := []string{"echo", "kv"}
	// v2 changes echo's CID; v3 only narrows echo's grants and drops kv.
	v2 := testSigned(2, entry("echo", "echo v2"), entry("kv", "kv"))
	v3 := testSigned(3, manifest.Actor{Name: "echo", CID: nameCID("echo v2").String(), Grants: []string{}})
	sep := measuring{pcr: measure.PCRBootActors}
	up := func(m []byte) measuring { return measuring{pcr: measure.PCRRuntime, upgrade: m} }
	bootActors := []measuring{actorAt(9, "echo", "echo", "log"), actorAt(9, "kv", "kv", "log"), sep}
	// Events 0-13 are the boot's up to the keys event; the first actor
	// event is 14.
	for _, tc := range []struct {
		name     string
		steps    []measuring
		upgrades [][]byte
		fail     map[string]loc
	}{
		{name: "upgrade then its actor", steps: append(bootActors, up(v2), actorAt(10, "echo", "echo v2", "log")), upgrades: [][]byte{v2, v3}},
		{name: "retry of a boot entry an upgrade left unchanged", steps: []measuring{actorAt(9, "echo", "echo", "log"), sep, up(v2), actorAt(10, "kv", "kv", "log")},
			upgrades: [][]byte{v2}},
		{name: "grants-only upgrade", steps: append(bootActors, up(v2), actorAt(10, "echo", "echo v2", "log"), up(v3), actorAt(10, "echo", "echo v2")),
			upgrades: [][]byte{v2, v3}},
		{name: "boot entry measured after the upgrade that replaced it", steps: append(bootActors, up(v2), actorAt(10, "echo", "echo", "log")),
			upgrades: [][]byte{v2}, fail: map[string]loc{CheckActor: {10, 18}}},
		{name: "upgrade's entry measured before its manifest", steps: append(bootActors, actorAt(10, "echo", "echo v2", "log"), up(v2)),
			upgrades: [][]byte{v2}, fail: map[string]loc{CheckActor: {10, 17}}},
		{name: "grants not the manifest's", steps: append(bootActors, up(v2), actorAt(10, "echo", "echo v2", "log", "random")),
			upgrades: [][]byte{v2}, fail: map[string]loc{CheckActor: {10, 18}}},
		{name: "grants the upgrade revoked still measured", steps: append(bootActors, up(v2), up(v3), actorAt(10, "echo", "echo v2", "log")),
			upgrades: [][]byte{v2, v3}, fail: map[string]loc{CheckActor: {10, 19}}},
		{name: "actor measured after the upgrade that dropped it", steps: append(bootActors, up(v2), up(v3), actorAt(10, "kv", "kv", "log")),
			upgrades: [][]byte{v2, v3}, fail: map[string]loc{CheckActor: {10, 19}}},
		{name: "upgrades out of order", steps: append(bootActors, up(v3), up(v2)),
			upgrades: [][]byte{v2, v3}, fail: map[string]loc{CheckActor: {10, 17}}},
		{name: "boot actor with other grants", steps: []measuring{actorAt(9, "echo", "echo", "log", "kv"), sep},
			fail: map[string]loc{CheckActor: {9, 14}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := manifestedStick(t, ca, image)
			for _, st := range tc.steps {
				var err error
				switch {
				case st.upgrade != nil:
					err = s.m.MeasureUpgrade(st.upgrade)
				case st.name == "":
					err = s.m.Separator(st.pcr)
				default:
					err = s.m.MeasureActor(st.pcr, measure.Actor{Name: st.name, CID: nameCID(st.cidOf), Capabilities: st.grants})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			ak := enrol(t, s)
			nonce := []byte("nonce-0123456789")
			ev, err := s.att.Attest(nonce, s.ck, s.m.Log(), s.m.PCRs())
			if err != nil {
				t.Fatal(err)
			}
			v := Verify(ev, Expect{AKPublic: ak, Nonce: nonce, ChannelKey: s.ck, Reference: reference(image, boot, tc.upgrades...)})
			checkVerdict(t, v, tc.fail)
		})
	}
}
