package receipt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
)

// respacedManifest is the signed manifest file b with its outer wrapper
// re-spaced and its keys reordered, the signed part byte for byte kept.
func respacedManifest(t testing.TB, b []byte) []byte {
	t.Helper()
	var f struct {
		Signed    json.RawMessage    `json:"signed"`
		Signature manifest.Signature `json:"signature"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf("{\n  \"signature\": {\"sig\": %q, \"alg\": %q, \"key\": %q},\n  \"signed\": %s\n}\n",
		f.Signature.Sig, f.Signature.Alg, f.Signature.Key, f.Signed))
}

// TestReleaseInAnyWrapper: the stick measured the canonical form of its
// manifest; a receipt verifies whether the evidence carries the file
// re-spaced and the release is the signed file, or the other way round,
// and another release is still refused.
func TestReleaseInAnyWrapper(t *testing.T) {
	s := newStick(t)
	orig, re := s.manifest, respacedManifest(t, s.manifest)
	if bytes.Equal(orig, re) {
		t.Fatal("re-spacing changed nothing")
	}
	r := sign(t, s.signer)
	for _, c := range []struct {
		name              string
		evidence, release []byte
	}{
		{"evidence re-spaced", re, orig},
		{"release re-spaced", orig, re},
	} {
		ev := s.evidence(t)
		ev.Manifests = [][]byte{c.evidence}
		tr := s.trust()
		tr.Release, tr.Config = c.release, testConfig
		if _, err := receipt.VerifyFile(file(r, ev), tr); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	ev := s.evidence(t)
	ev.Manifests = [][]byte{re}
	tr := s.trust()
	tr.Release = respacedManifest(t, signedManifest(t, gov, 2, testImage))
	if _, err := receipt.VerifyFile(file(r, ev), tr); !errors.Is(err, receipt.ErrRelease) {
		t.Fatalf("another release: %v, want %v", err, receipt.ErrRelease)
	}
}
