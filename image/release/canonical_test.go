package release

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/teastick/teastick/image/manifest/manifesttest"
)

// TestReferenceOfAnyWrapper: reference.json is the same for the signed
// manifest file and for the same manifest re-spaced with its wrapper's
// keys reordered, and differs for a manifest changed in a signed field.
func TestReferenceOfAnyWrapper(t *testing.T) {
	stage0 := testStage0(t)
	stick := append(bytes.Clone(stage0), 0)
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signed := func(version uint64) []byte { return signFor(t, gov, version, stage0, stick) }
	v1 := signed(1)
	re := manifesttest.Respaced(t, v1)
	ref := func(b []byte) []byte {
		r, err := Make(stage0, stick, b, "release-test", "linux-hosted")
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(r)
		return j
	}
	a, b := ref(v1), ref(re)
	if !bytes.Equal(a, b) {
		t.Fatalf("same signed manifest, different references:\n%s\n%s", a, b)
	}
	if bytes.Equal(a, ref(signed(2))) {
		t.Fatal("another manifest, same reference")
	}
}
