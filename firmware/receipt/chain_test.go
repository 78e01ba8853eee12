package receipt_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/measure"
)

// upgradeManifest is a manifest of version for testImage, signed by gov,
// with actors.
func upgradeManifest(t testing.TB, version uint64, actors ...manifest.Actor) []byte {
	t.Helper()
	d := sha256.Sum256(testImage)
	b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(d[:])}, Actors: actors}, gov)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A receipt must name an actor, CID and manifest version that go
// together: that manifest names the actor at that CID, and the boot
// measured that entry with its grants. A receipt of an actor under an
// upgrade that dropped it fails, and so does one under an upgrade that
// changed the actor's grants when the stick did not measure the actor
// with them.
func TestReceiptFollowsItsManifest(t *testing.T) {
	const kvCID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
	echo := cid.MustParse(testCID)
	for _, tc := range []struct {
		name     string
		upgrade  []manifest.Actor
		measured []measure.Actor // on PCR 10 after the upgrade
		version  uint64          // the receipt's
		want     error
	}{
		{name: "boot version", upgrade: []manifest.Actor{{Name: "kv", CID: kvCID}}, version: 1},
		{name: "actor the upgrade dropped under the upgrade", upgrade: []manifest.Actor{{Name: "kv", CID: kvCID}}, version: 2,
			want: receipt.ErrActorUnseen},
		{name: "grants changed not measured", upgrade: []manifest.Actor{{Name: "echo", CID: testCID, Grants: []string{}}}, version: 2,
			want: receipt.ErrActorUnseen},
		{name: "grants changed and measured", upgrade: []manifest.Actor{{Name: "echo", CID: testCID, Grants: []string{}}},
			measured: []measure.Actor{{Name: "echo", CID: echo}}, version: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStick(t)
			v2 := upgradeManifest(t, 2, tc.upgrade...)
			if err := s.m.MeasureUpgrade(v2); err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.measured {
				if err := s.m.MeasureActor(measure.PCRRuntime, a); err != nil {
					t.Fatal(err)
				}
			}
			ev := s.evidence(t)
			ev.Manifests = [][]byte{s.manifest, v2}
			r, err := s.signer.Sign("echo", testCID, "invoke", []byte("input"), []byte("output"), tc.version)
			if err != nil {
				t.Fatal(err)
			}
			_, err = receipt.VerifyFile(file(r, ev), s.trust())
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}
