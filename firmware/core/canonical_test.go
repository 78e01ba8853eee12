package core

import (
	"bytes"
	"context"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/manifest/manifesttest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/verify"
)

// TestManifestMeasuredCanonically: the stick measures a manifest's
// canonical form (PCR 8 at boot, PCR 10 on upgrade), so a stick that
// booted and upgraded with re-spaced files verifies against a reference
// built from the files as signed, and the other way round. The
// attestation still returns the files as the stick received them.
func TestManifestMeasuredCanonically(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	v1 := sign(t, 1, manifest.Actor{Name: "edge", CID: edge})
	v2 := sign(t, 2, manifest.Actor{Name: "edge", CID: edge})
	v1r, v2r := manifesttest.Respaced(t, v1), manifesttest.Respaced(t, v2)
	if bytes.Equal(v1, v1r) || bytes.Equal(v2, v2r) {
		t.Fatal("re-spacing changed nothing")
	}
	for _, c := range []struct {
		name                string // no commas: it names swtpm's state directory
		boot, upgrade       []byte // what the stick is given
		refBoot, refUpgrade []byte // what the verifier is given
	}{
		{"stick re-spaced verifier signed", v1r, v2r, v1, v2},
		{"stick signed verifier re-spaced", v1, v2, v1r, v2r},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := measured(t)
			cfg.Fetch = box.Fetch
			s, _ := newStick(t, cfg)
			ctx := context.Background()
			if err := s.Boot(ctx, c.boot); err != nil {
				t.Fatal(err)
			}
			if err := s.Upgrade(ctx, c.upgrade); err != nil {
				t.Fatal(err)
			}
			nonce := []byte("canonical-manifest-nonce")
			a, err := s.Attest(nonce)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Manifests) != 2 || !bytes.Equal(a.Manifests[0], c.boot) || !bytes.Equal(a.Manifests[1], c.upgrade) {
				t.Fatalf("attestation returns manifests %q, want the files given", a.Manifests)
			}
			ak, err := s.att.AKPublic()
			if err != nil {
				t.Fatal(err)
			}
			ref := &verify.Reference{Events: verify.BootEvents(testImage, []byte("version=test\n"), c.refBoot),
				Boot: c.refBoot, Upgrades: [][]byte{c.refUpgrade}}
			v := verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce, ChannelKey: s.channelDER, Reference: ref})
			if !v.OK() {
				t.Fatalf("verdict:\n%s", v)
			}
			// A manifest changed in a signed field is another manifest.
			other := sign(t, 3, manifest.Actor{Name: "edge", CID: edge})
			ref.Events = verify.BootEvents(testImage, []byte("version=test\n"), other)
			if v := verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce, ChannelKey: s.channelDER, Reference: ref}); v.OK() {
				t.Fatalf("verified against another boot manifest:\n%s", v)
			}
		})
	}
}
