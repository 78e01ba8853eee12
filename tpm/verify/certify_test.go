package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// certTPM is a started swtpm with an Attester.
func certTPM(t testing.TB, opts swtpmtest.Options) *attest.Attester {
	t.Helper()
	sw := swtpmtest.Start(t, opts)
	tpm := sw.OpenT(t)
	if err := measure.Startup(tpm); err != nil {
		t.Fatal(err)
	}
	a := &attest.Attester{TPM: tpm}
	t.Cleanup(func() { a.Close() })
	return a
}

func p256Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	k, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkix(t testing.TB, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// softAK is a software key posing as an AK (parseAK only reads the public
// area), to sign attestations a TPM would never sign and reach the checks
// after the signature.
func softAK(t testing.TB) (akPublic []byte, sign func(msg []byte) []byte) {
	k := p256Key(t)
	b, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pub := attest.AKTemplate
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: b[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: b[33:]}})
	return tpm2.Marshal(pub), func(msg []byte) []byte {
		d := sha256.Sum256(msg)
		r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()}})})
	}
}

func flip(b []byte, bit int) []byte {
	c := slices.Clone(b)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}

func TestCertifiedKey(t *testing.T) {
	a := certTPM(t, swtpmtest.Options{Provision: true})
	other := certTPM(t, swtpmtest.Options{Provision: true})
	akPub, err := a.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	otherAK, err := other.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	key, key2 := edKey(t), edKey(t)
	q := sha256.Sum256([]byte("label"))
	c, err := a.Certify(key, q[:])
	if err != nil {
		t.Fatal(err)
	}
	got, at, err := CertifiedKey(akPub, c, q[:])
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Fatal("returned another key")
	}
	if at.Type != tpm2.TPMSTAttestCertify {
		t.Fatalf("attest type %#x", at.Type)
	}

	byOther, err := other.Certify(key, q[:])
	if err != nil {
		t.Fatal(err)
	}
	quoted, quoteSig, err := a.Quote(q[:], []uint32{0})
	if err != nil {
		t.Fatal(err)
	}
	softPub, softSign := softAK(t)
	realAttest, err := tpm2.Unmarshal[tpm2.TPMSAttest](c.Attest)
	if err != nil {
		t.Fatal(err)
	}
	notGenerated := *realAttest
	notGenerated.Magic = 0x12345678
	notGeneratedBytes := tpm2.Marshal(notGenerated)
	garbage := []byte("not a TPMS_ATTEST")

	type tc struct {
		name string
		ak   []byte
		c    *attest.Certification
		q    []byte
		want error
	}
	cases := []tc{
		{"no certification", akPub, nil, q[:], ErrNoCertification},
		{"empty attestation", akPub, &attest.Certification{Key: c.Key, Signature: c.Signature}, q[:], ErrNoCertification},
		{"AK public is not an AK", akPub[:10], c, q[:], ErrCertAK},
		{"certified by another TPM's AK", akPub, byOther, q[:], ErrCertSignature},
		{"checked against another TPM's AK", otherAK, c, q[:], ErrCertSignature},
		{"another key", akPub, &attest.Certification{Key: pkix(t, key2), Attest: c.Attest, Signature: c.Signature}, q[:], ErrCertName},
		{"wrong qualifying data", akPub, c, []byte("other"), ErrCertQualifying},
		{"no qualifying data", akPub, c, nil, ErrCertQualifying},
		{"a quote, not a certification", akPub, &attest.Certification{Key: c.Key, Attest: quoted, Signature: quoteSig}, q[:], ErrCertType},
		{"signed, not TPM-generated", softPub, &attest.Certification{Key: c.Key, Attest: notGeneratedBytes, Signature: softSign(notGeneratedBytes)}, q[:], ErrCertMagic},
		{"signed garbage", softPub, &attest.Certification{Key: c.Key, Attest: garbage, Signature: softSign(garbage)}, q[:], ErrCertAttest},
		{"a P-256 key", akPub, &attest.Certification{Key: pkix(t, &p256Key(t).PublicKey), Attest: c.Attest, Signature: c.Signature}, q[:], ErrCertKey},
		{"key is not PKIX DER", akPub, &attest.Certification{Key: []byte{0x30, 0x03, 0x02, 0x01, 0x01}, Attest: c.Attest, Signature: c.Signature}, q[:], ErrCertKey},
	}
	for bit := range 8 * len(c.Attest) {
		cases = append(cases, tc{"attest bit flipped", akPub, &attest.Certification{Key: c.Key, Attest: flip(c.Attest, bit), Signature: c.Signature}, q[:], ErrCertSignature})
	}
	for bit := range 8 * len(c.Signature) {
		cases = append(cases, tc{"signature bit flipped", akPub, &attest.Certification{Key: c.Key, Attest: c.Attest, Signature: flip(c.Signature, bit)}, q[:], ErrCertSignature})
	}
	for bit := range 8 * len(c.Key) {
		cases = append(cases, tc{"key bit flipped", akPub, &attest.Certification{Key: flip(c.Key, bit), Attest: c.Attest, Signature: c.Signature}, q[:], nil})
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		k, at, err := CertifiedKey(tc.ak, tc.c, tc.q)
		if err == nil || k != nil || at != nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if tc.want == nil { // a flipped key bit breaks the DER or the point, or names another key
			if !errors.Is(err, ErrCertKey) && !errors.Is(err, ErrCertName) {
				t.Errorf("%s: %v, want %v or %v", tc.name, err, ErrCertKey, ErrCertName)
			}
		} else if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !seen[tc.name] {
			seen[tc.name] = true
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// TestSameBoot: a quote and a certification from one TPM boot share the
// reset and restart counts; after a reboot (swtpm restarted on its state:
// TPM2_Startup(CLEAR) after _TPM_Init) they differ, under the same AK.
func TestSameBoot(t *testing.T) {
	state := t.TempDir()
	boot := func(provision bool) (*swtpmtest.Server, *attest.Attester) {
		sw := swtpmtest.Start(t, swtpmtest.Options{Provision: provision, StateDir: state})
		tpm := sw.OpenT(t)
		if err := measure.Startup(tpm); err != nil {
			t.Fatal(err)
		}
		return sw, &attest.Attester{TPM: tpm}
	}
	sw, a := boot(true)
	akPub, err := a.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	q := sha256.Sum256([]byte("label"))
	quote := func(a *attest.Attester) *tpm2.TPMSAttest {
		quoted, sig, err := a.Quote([]byte("nonce"), []uint32{0})
		if err != nil {
			t.Fatal(err)
		}
		ak, err := parseAK(akPub)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkSignature(ak, quoted, sig); err != nil {
			t.Fatal(err)
		}
		at, err := tpm2.Unmarshal[tpm2.TPMSAttest](quoted)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	certify := func(a *attest.Attester) *tpm2.TPMSAttest {
		c, err := a.Certify(edKey(t), q[:])
		if err != nil {
			t.Fatal(err)
		}
		_, at, err := CertifiedKey(akPub, c, q[:])
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	q1, c1 := quote(a), certify(a)
	if !SameBoot(q1, c1) || !SameBoot(c1, q1) {
		t.Fatalf("same boot: quote %+v, certification %+v", q1.ClockInfo, c1.ClockInfo)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	sw.Stop() // power off; the next swtpm on the same state boots it again

	_, b := boot(false)
	defer b.Close()
	if got, err := b.AKPublic(); err != nil || string(got) != string(akPub) {
		t.Fatalf("AK changed across the reboot: %v", err)
	}
	q2, c2 := quote(b), certify(b)
	if !SameBoot(q2, c2) {
		t.Fatalf("same boot after reboot: quote %+v, certification %+v", q2.ClockInfo, c2.ClockInfo)
	}
	if SameBoot(q1, c2) || SameBoot(c1, q2) {
		t.Fatalf("across a reboot: before %+v, after %+v", c1.ClockInfo, c2.ClockInfo)
	}
	t.Logf("reset count %d -> %d, restart count %d -> %d", c1.ClockInfo.ResetCount, c2.ClockInfo.ResetCount, c1.ClockInfo.RestartCount, c2.ClockInfo.RestartCount)
	if SameBoot(nil, c1) || SameBoot(c1, nil) {
		t.Fatal("SameBoot with nil")
	}
}
