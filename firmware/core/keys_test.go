package core

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"testing"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/verify"
)

// TestKeysMeasured: New measures the channel and result keys first on
// PCR 9, before the stick serves anything, and a verified attestation
// names exactly those keys: the TLS key and the key that signs receipts.
func TestKeysMeasured(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, _ := newStick(t, cfg)
	var keys []eventlog.Event
	for _, e := range cfg.Measurer.Events() {
		if tag, _, err := eventlog.ParseTagged(e.Data); err == nil && tag == eventlog.TagKeys {
			keys = append(keys, e)
		}
	}
	if len(keys) != 1 || keys[0].PCR != measure.PCRBootActors {
		t.Fatalf("%d keys events (%+v), want one on PCR %d", len(keys), keys, measure.PCRBootActors)
	}
	der, _ := x509.MarshalPKIXPublicKey(s.ChannelKey().Public())
	v1 := sign(t, 1, manifest.Actor{Name: "edge", CID: edge})
	if err := s.Boot(context.Background(), v1); err != nil {
		t.Fatal(err)
	}
	nonce := []byte("keys-measured-nonce")
	a, err := s.Attest(nonce)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := s.att.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	ref := &verify.Reference{Events: verify.BootEvents(testImage, []byte("version=test\n"), v1), Boot: v1}
	v := verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce, ChannelKey: der, Reference: ref})
	if !v.OK() {
		t.Fatalf("verdict:\n%s", v)
	}
	if !bytes.Equal(v.Keys.Channel, der) || !v.Keys.Result.Equal(s.results.Public()) {
		t.Fatalf("the verdict names keys %+v", v.Keys)
	}
	// The receipts the API signs verify with the measured key.
	code, out := call(t, s.Handler(), "POST", "/v1/actors/edge/invoke", `{"operation":"echo","payload":"aGk="}`)
	if code != 200 {
		t.Fatalf("invoke: %d %v", code, out)
	}
	var res Result
	b, _ := json.Marshal(out)
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if err := receipt.Verify(res.Receipt, v.Keys.Result); err != nil {
		t.Fatalf("receipt %s: %v", b, err)
	}
}
