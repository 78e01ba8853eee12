package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
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
	key, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	q := []byte("qualifying")
	for i := range 5 { // more than swtpm's three object slots: each key is flushed
		c, err := a.Certify(key, q)
		if err != nil {
			t.Fatalf("certify %d: %v", i, err)
		}
		der, _ := x509.MarshalPKIXPublicKey(key)
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
		pub := ResultKeyPublic(key)
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

func TestCertifyRefusesOtherKeys(t *testing.T) {
	a := &Attester{} // never reaches the TPM
	for _, key := range []ed25519.PublicKey{nil, make([]byte, 31), make([]byte, 33), make([]byte, 64)} {
		if _, err := a.Certify(key, nil); err == nil {
			t.Errorf("key of %d bytes: certified", len(key))
		}
	}
}

// TestResultKeyPublic pins the object a verifier recomputes: a keyed-hash
// data object that can do nothing, whose unique field is SHA-256 of 32
// zero bytes, ResultKeyDomain and the key; and no unique field for a
// malformed key.
func TestResultKeyPublic(t *testing.T) {
	key, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := ResultKeyPublic(key)
	if pub.Type != tpm2.TPMAlgKeyedHash || pub.NameAlg != tpm2.TPMAlgSHA256 ||
		pub.ObjectAttributes != (tpm2.TPMAObject{UserWithAuth: true}) {
		t.Fatalf("public area %+v", pub)
	}
	u, err := pub.Unique.KeyedHash()
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(append(append(make([]byte, 32), ResultKeyDomain...), key...))
	if !bytes.Equal(u.Buffer, want[:]) {
		t.Fatalf("unique %x, want %x", u.Buffer, want)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	n1, _ := tpm2.ObjectName(&pub)
	p2 := ResultKeyPublic(other)
	if n2, _ := tpm2.ObjectName(&p2); bytes.Equal(n1.Buffer, n2.Buffer) {
		t.Fatal("two keys, one Name")
	}
	short := ResultKeyPublic(key[:31])
	if u, _ := short.Unique.KeyedHash(); len(u.Buffer) != 0 {
		t.Fatalf("a 31-byte key got unique %x", u.Buffer)
	}
}

// TestLoadExternalBinding pins the TPM behaviour Certify relies on: the TPM
// refuses sensitive data that does not hash to the public area's unique
// field (TPM_RC_BINDING), so a certified Name commits to the key it was
// loaded for; and a public-only object cannot be certified, its authValue
// being unavailable (TPM_RC_AUTH_UNAVAILABLE), hence the sensitive part.
func TestLoadExternalBinding(t *testing.T) {
	a := newAttester(t)
	k1, _, _ := ed25519.GenerateKey(rand.Reader)
	k2, _, _ := ed25519.GenerateKey(rand.Reader)
	seed, data := resultKeyData(k2)
	l, err := tpm2.LoadExternal{
		InPrivate: tpm2.New2B(tpm2.TPMTSensitive{SensitiveType: tpm2.TPMAlgKeyedHash,
			SeedValue: tpm2.TPM2BDigest{Buffer: seed},
			Sensitive: tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BSensitiveData{Buffer: data})}),
		InPublic:  tpm2.New2B(ResultKeyPublic(k1)),
		Hierarchy: tpm2.TPMRHNull,
	}.Execute(a.tpm())
	if err == nil {
		tpm2.FlushContext{FlushHandle: l.ObjectHandle}.Execute(a.tpm())
		t.Fatal("TPM loaded one key's data under another key's public area")
	}
	if !errors.Is(err, tpm2.TPMRCBinding) {
		t.Errorf("mismatched key: %v, want TPM_RC_BINDING", err)
	}

	ak, err := a.loadedAK()
	if err != nil {
		t.Fatal(err)
	}
	l, err = tpm2.LoadExternal{InPublic: tpm2.New2B(ResultKeyPublic(k1)), Hierarchy: tpm2.TPMRHNull}.Execute(a.tpm())
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
