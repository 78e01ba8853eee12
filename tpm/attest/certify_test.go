package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

func newAttester(t testing.TB) *Attester {
	t.Helper()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	if err := measure.Startup(tpm); err != nil {
		t.Fatal(err)
	}
	a := &Attester{TPM: tpm}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestCertify certifies a software key and checks what the TPM says about
// it: the Name is the one ResultKeyPublic gives, the qualifying data is
// echoed, and no object is left loaded.
func TestCertify(t *testing.T) {
	a := newAttester(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	q := []byte("qualifying")
	for i := range 5 { // more than swtpm's three object slots: each key is flushed
		c, err := a.Certify(key, q)
		if err != nil {
			t.Fatalf("certify %d: %v", i, err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if !bytes.Equal(c.Key, der) {
			t.Fatal("certification names another key")
		}
		at, err := tpm2.Unmarshal[tpm2.TPMSAttest](c.Attest)
		if err != nil {
			t.Fatal(err)
		}
		if at.Magic != tpm2.TPMGeneratedValue || at.Type != tpm2.TPMSTAttestCertify {
			t.Fatalf("magic %#x type %#x", at.Magic, at.Type)
		}
		if !bytes.Equal(at.ExtraData.Buffer, q) {
			t.Fatalf("extraData %x", at.ExtraData.Buffer)
		}
		info, err := at.Attested.Certify()
		if err != nil {
			t.Fatal(err)
		}
		pub := ResultKeyPublic(&key.PublicKey)
		name, err := tpm2.ObjectName(&pub)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(info.Name.Buffer, name.Buffer) {
			t.Fatalf("certified name %x, ResultKeyPublic name %x", info.Name.Buffer, name.Buffer)
		}
	}
	h, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTTransient) << 24, PropertyCount: 16}.Execute(a.TPM)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := h.CapabilityData.Data.Handles()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs.Handle) != 1 { // the AK
		t.Fatalf("%d transient objects loaded, want 1 (the AK): %v", len(hs.Handle), hs.Handle)
	}
}

func TestCertifyRefusesOtherCurves(t *testing.T) {
	a := &Attester{} // never reaches the TPM
	for _, c := range []elliptic.Curve{elliptic.P384(), elliptic.P224()} {
		key, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Certify(key, nil); err == nil {
			t.Errorf("%s: certified", c.Params().Name)
		}
	}
	if _, err := a.Certify(nil, nil); err == nil {
		t.Error("nil key: certified")
	}
}

func TestResultKeyPublicPadsCoordinates(t *testing.T) {
	for range 300 { // about one key in 128 has a coordinate below 2^248
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub := ResultKeyPublic(&key.PublicKey)
		p, err := pub.Unique.ECC()
		if err != nil {
			t.Fatal(err)
		}
		if len(p.X.Buffer) != 32 || len(p.Y.Buffer) != 32 {
			t.Fatalf("coordinates of %d and %d bytes", len(p.X.Buffer), len(p.Y.Buffer))
		}
		back, err := tpm2.Pub(pub)
		if err != nil {
			t.Fatal(err)
		}
		if !key.PublicKey.Equal(back) {
			t.Fatal("public area holds another key")
		}
	}
}

// TestLoadExternalBinding pins the TPM behaviour Certify relies on: the TPM
// refuses a private part that does not match the public area
// (TPM_RC_BINDING), so a certification shows the stick held the private
// key; and a public-only object cannot be certified, its authValue being
// unavailable (TPM_RC_AUTH_UNAVAILABLE), hence the private part.
func TestLoadExternalBinding(t *testing.T) {
	a := newAttester(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, err := k2.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	l, err := tpm2.LoadExternal{
		InPrivate: tpm2.New2B(tpm2.TPMTSensitive{SensitiveType: tpm2.TPMAlgECC,
			Sensitive: tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: priv})}),
		InPublic:  tpm2.New2B(ResultKeyPublic(&k1.PublicKey)),
		Hierarchy: tpm2.TPMRHNull,
	}.Execute(a.tpm())
	if err == nil {
		tpm2.FlushContext{FlushHandle: l.ObjectHandle}.Execute(a.tpm())
		t.Fatal("TPM loaded a private key with another key's public area")
	}
	if !errors.Is(err, tpm2.TPMRCBinding) {
		t.Errorf("mismatched key: %v, want TPM_RC_BINDING", err)
	}

	ak, err := a.loadedAK()
	if err != nil {
		t.Fatal(err)
	}
	l, err = tpm2.LoadExternal{InPublic: tpm2.New2B(ResultKeyPublic(&k1.PublicKey)), Hierarchy: tpm2.TPMRHNull}.Execute(a.tpm())
	if err != nil {
		t.Fatalf("load public part: %v", err)
	}
	defer tpm2.FlushContext{FlushHandle: l.ObjectHandle}.Execute(a.tpm())
	_, err = tpm2.Certify{
		ObjectHandle: tpm2.AuthHandle{Handle: l.ObjectHandle, Name: l.Name, Auth: tpm2.PasswordAuth(nil)},
		SignHandle:   tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		InScheme:     tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}.Execute(a.tpm())
	if err == nil {
		t.Fatal("TPM certified a public-only object")
	}
	if !errors.Is(err, tpm2.TPMRCAuthUnavailable) {
		t.Errorf("public-only certify: %v, want TPM_RC_AUTH_UNAVAILABLE", err)
	}
}
