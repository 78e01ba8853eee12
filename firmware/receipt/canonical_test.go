package receipt_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest/manifesttest"
)

// TestReleaseInAnyWrapper: the stick measured the canonical form of its
// manifest; a receipt verifies whether the evidence carries the file
// re-spaced and the release is the signed file, or the other way round,
// and another release is still refused.
func TestReleaseInAnyWrapper(t *testing.T) {
	s := newStick(t)
	orig, re := s.manifest, manifesttest.Respaced(t, s.manifest)
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
	tr.Release = manifesttest.Respaced(t, signedManifest(t, gov, 2, testImage))
	if _, err := receipt.VerifyFile(file(r, ev), tr); !errors.Is(err, receipt.ErrRelease) {
		t.Fatalf("another release: %v, want %v", err, receipt.ErrRelease)
	}
}
