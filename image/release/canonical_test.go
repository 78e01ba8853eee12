package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/manifest/manifesttest"
)

// TestReferenceOfAnyWrapper: reference.json is the same for the signed
// manifest file and for the same manifest re-spaced with its wrapper's
// keys reordered, and differs for a manifest changed in a signed field.
func TestReferenceOfAnyWrapper(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stage0, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	stick := append(bytes.Clone(stage0), 0)
	s0, st := sha256.Sum256(stage0), sha256.Sum256(stick)
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signed := func(version uint64) []byte {
		b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
			Firmware: manifest.Firmware{Stage0: hex.EncodeToString(s0[:]), Stick: hex.EncodeToString(st[:])}}, gov)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
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
