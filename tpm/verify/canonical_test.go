package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/manifest/manifesttest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

func signedManifest(t testing.TB, version uint64) []byte {
	t.Helper()
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: strings.Repeat("1", 64)}}, gov)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBootEventsCanonicalManifest: the reference's manifest event is the
// same for the same signed manifest in any wrapper, differs for another
// manifest, and a PCR 10 upgrade event the stick logged from one file is
// allowed by a reference given the other.
func TestBootEventsCanonicalManifest(t *testing.T) {
	v1, v2 := signedManifest(t, 1), signedManifest(t, 2)
	v1r := manifesttest.Respaced(t, v1)
	if bytes.Equal(v1, v1r) {
		t.Fatal("re-spacing changed nothing")
	}
	var image [32]byte
	a, b := BootEvents(image, testConfig, v1), BootEvents(image, testConfig, v1r)
	if !slices.EqualFunc(a, b, func(x, y eventlog.Event) bool { return x.PCR == y.PCR && x.Digest == y.Digest }) {
		t.Fatalf("same signed manifest, different reference events:\n%v\n%v", a, b)
	}
	if c := BootEvents(image, testConfig, v2); slices.EqualFunc(a, c, func(x, y eventlog.Event) bool { return x.Digest == y.Digest }) {
		t.Fatal("another manifest, same reference events")
	}
	// The stick logs the canonical form on PCR 10.
	canon, err := manifest.CanonicalFile(v1r)
	if err != nil {
		t.Fatal(err)
	}
	data := eventlog.Tagged(eventlog.TagManifest, canon)
	e := eventlog.Event{PCR: measure.PCRRuntime, Type: eventlog.EV_EVENT_TAG, Digest: sha256.Sum256(data), Data: data}
	for _, up := range [][]byte{v1, v1r} {
		if _, _, msg := newChain(&Reference{Upgrades: [][]byte{up}}).step(e); msg != "" {
			t.Errorf("upgrade given as %q: %s", up, msg)
		}
	}
	if _, _, msg := newChain(&Reference{Upgrades: [][]byte{v2}}).step(e); msg == "" {
		t.Error("another upgrade manifest allows the event")
	}
}
