package receipt_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/nvcounter"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// gov is the test governance key.
var gov = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var (
	testImage  = []byte("released stick image")
	testConfig = []byte("version=receipt-test\nboard=swtpm\n")
)

const testCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

// signedManifest is a release manifest for image, signed by key, serving
// echo at testCID.
func signedManifest(t testing.TB, key ed25519.PrivateKey, version uint64, image []byte) []byte {
	t.Helper()
	d := sha256.Sum256(image)
	m := &manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(d[:])},
		Actors:   []manifest.Actor{{Name: "echo", CID: testCID, Grants: []string{"log"}}}}
	b, err := manifest.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stick is a swtpm booted the way stage 0 and the stick boot a released
// image: its result key and channel key measured first on PCR 9, the AK's
// certification of the result key, as the stick has it after boot.
type stick struct {
	sw       *swtpmtest.Server
	tpm      transport.TPM
	m        *measure.Measurer
	att      *attest.Attester
	ak       []byte
	signer   *receipt.Signer
	ck       []byte
	cert     *attest.Certification
	counter  *attest.NVCertification
	manifest []byte
}

func newStick(t testing.TB) *stick {
	t.Helper()
	return bootOn(t, swtpmtest.Start(t, swtpmtest.Options{Provision: true}), testImage, true)
}

// reboot restarts s's swtpm on its state (PCRs reset, the same AK) and
// boots the stick again: a new boot of the same stick.
func reboot(t testing.TB, s *stick) *stick {
	t.Helper()
	s.att.Close()
	s.sw.Stop()
	return bootOn(t, swtpmtest.Start(t, swtpmtest.Options{StateDir: s.sw.StateDir, CADir: s.sw.CADir}), testImage, true)
}

// bootOn boots image on sw; keys says whether the keys are measured (an
// attacker's boot measures none).
func bootOn(t testing.TB, sw *swtpmtest.Server, image []byte, keys bool) *stick {
	t.Helper()
	tpm := sw.OpenT(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	m, err := measure.New(tpm, nil)
	must(err)
	// PCR 0 as the hosted stick begins it: the manifests here name the
	// all-zero stage 0 (measure.NoStage0).
	must(m.MeasureStage0(measure.NoStage0, "teastick receipt test: no stage 0"))
	must(m.MeasureImage(image, "teastick receipt test"))
	must(m.Separator(measure.HandoffPCRs...))
	must(m.MeasureConfig(testConfig))
	s := &stick{sw: sw, tpm: tpm, m: m, signer: newSigner(t), manifest: signedManifest(t, gov, 1, testImage)}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	s.ck, err = x509.MarshalPKIXPublicKey(&k.PublicKey)
	must(err)
	if keys {
		must(m.MeasureKeys(measure.Keys{Channel: s.ck, Result: s.signer.Public()}))
	}
	must(m.MeasureManifest(s.manifest))
	must(m.Separator(measure.PCRConfig))
	c, err := cid.Decode(testCID)
	must(err)
	must(m.MeasureActor(measure.PCRBootActors, measure.Actor{Name: "echo", CID: c, Capabilities: []string{"log"}}))
	must(m.Separator(measure.PCRBootActors))
	s.att = &attest.Attester{TPM: tpm}
	t.Cleanup(func() { s.att.Close() })
	s.ak, err = s.att.AKPublic()
	must(err)
	s.cert, err = s.att.Certify(s.signer.Public(), receipt.Qualifying())
	must(err)
	s.raiseCounter(t, 1)
	return s
}

// raiseCounter raises the TPM's rollback counter to at least v, as the
// stick does before it measures a manifest of version v, and certifies
// it for this boot as the stick's attestation does.
func (s *stick) raiseCounter(t testing.TB, v uint64) {
	t.Helper()
	c, err := nvcounter.Open(s.tpm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Raise(v); err != nil {
		t.Fatal(err)
	}
	if s.counter, err = s.att.CertifyNV(nvcounter.Index, c.Name(), 8, attest.CounterQualifying(s.ck)); err != nil {
		t.Fatal(err)
	}
}

// evidence is what the stick's attestation gives a verifier now.
func (s *stick) evidence(t testing.TB) *receipt.Evidence {
	t.Helper()
	nonce := make([]byte, 16)
	rand.Read(nonce)
	ev, err := s.att.Attest(nonce, s.ck, s.m.Log(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &receipt.Evidence{Nonce: nonce, Attestation: ev, Certification: s.cert, RollbackCounter: s.counter, Manifests: [][]byte{s.manifest}, Config: testConfig}
}

func (s *stick) trust() receipt.Trust {
	return receipt.Trust{AKPublic: s.ak, Governance: gov.Public().(ed25519.PublicKey)}
}

func file(r *receipt.Receipt, ev *receipt.Evidence) *receipt.File {
	return &receipt.File{Format: receipt.FileFormat, Receipt: r, Evidence: ev}
}

func newSigner(t testing.TB) *receipt.Signer {
	t.Helper()
	s, err := receipt.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sign(t testing.TB, s *receipt.Signer) *receipt.Receipt {
	t.Helper()
	r, err := s.Sign("echo", testCID, "invoke", []byte("input"), []byte("output"), 1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	s := newStick(t)
	r := sign(t, s.signer)
	if r.Counter != 1 || r.Actor != "echo" || r.CID != testCID || r.Operation != "invoke" || r.ManifestVersion != 1 {
		t.Fatalf("receipt %+v", r)
	}
	if want := sha256.Sum256([]byte("input")); r.InputSHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("input_sha256 %s", r.InputSHA256)
	}
	f := file(r, s.evidence(t))
	v, err := receipt.VerifyFile(f, s.trust())
	if err != nil {
		t.Fatal(err)
	}
	if !v.Keys.Result.Equal(s.signer.Public()) {
		t.Fatalf("verdict names result key %x", v.Keys.Result)
	}
	if err := receipt.CheckInput(r, []byte("input"), []byte("output")); err != nil {
		t.Fatal(err)
	}

	// Offline: everything travels as JSON.
	fj, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"format":4`, `"rollback_counter"`, `"actor"`, `"cid"`, `"operation"`, `"input_sha256"`, `"output_sha256"`, `"manifest_version"`, `"counter"`, `"signature"`,
		`"nonce"`, `"attestation"`, `"certification"`, `"manifests"`, `"config"`} {
		if !bytes.Contains(fj, []byte(k)) {
			t.Errorf("receipt file JSON lacks %s", k)
		}
	}
	var f2 receipt.File
	if err := json.Unmarshal(fj, &f2); err != nil {
		t.Fatal(err)
	}
	if _, err := receipt.VerifyFile(&f2, s.trust()); err != nil {
		t.Fatal(err)
	}
	// With the release given, the boot manifest must be it.
	tr := s.trust()
	tr.Release, tr.Config = s.manifest, testConfig
	if _, err := receipt.VerifyFile(&f2, tr); err != nil {
		t.Fatal(err)
	}
	t.Logf("receipt file %d bytes of JSON", len(fj))
}

// TestForged builds receipts the ways an attacker with the stick's TPM
// can (the AK has an empty authorization and no policy): every one is
// refused, and the genuine receipt of the same boot is accepted.
func TestForged(t *testing.T) {
	s := newStick(t)
	genuine := file(sign(t, s.signer), s.evidence(t))
	if _, err := receipt.VerifyFile(genuine, s.trust()); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	own := newSigner(t) // the attacker's key

	type tc struct {
		name  string
		f     *receipt.File
		trust receipt.Trust
		want  error
	}
	var cases []tc

	// 1. The attack of issue 14: have the AK certify your own key, sign.
	ownCert, err := s.att.Certify(own.Public(), receipt.Qualifying())
	if err != nil {
		t.Fatal(err)
	}
	ev := s.evidence(t)
	ev.Certification = ownCert
	cases = append(cases, tc{"own key certified by the AK, genuine evidence", file(sign(t, own), ev), s.trust(), receipt.ErrSignature})

	// 2. Boot the genuine image, then extend your own keys event into
	// PCR 9 after the stick's, and quote.
	after := newStick(t)
	if err := after.m.MeasureKeys(measure.Keys{Channel: after.ck, Result: own.Public()}); err != nil {
		t.Fatal(err)
	}
	ev = after.evidence(t)
	ev.Certification, err = after.att.Certify(own.Public(), receipt.Qualifying())
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, tc{"own keys event extended after the genuine boot", file(sign(t, own), ev), after.trust(), receipt.ErrEvidence})

	// 3. Boot another image: stage 0 measures it, the keys are measured
	// as the stick would.
	other := bootOn(t, swtpmtest.Start(t, swtpmtest.Options{Provision: true}), []byte("another image"), true)
	cases = append(cases, tc{"keys measured by a boot of another image", file(sign(t, other.signer), other.evidence(t)), other.trust(), receipt.ErrEvidence})

	// 4. No image at all: a fresh TPM, only the attacker's keys event.
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	bare := &stick{sw: sw, tpm: sw.OpenT(t), signer: own, ck: s.ck, manifest: s.manifest}
	if bare.m, err = measure.New(bare.tpm, nil); err != nil {
		t.Fatal(err)
	}
	if err := bare.m.MeasureKeys(measure.Keys{Channel: bare.ck, Result: own.Public()}); err != nil {
		t.Fatal(err)
	}
	bare.att = &attest.Attester{TPM: bare.tpm}
	t.Cleanup(func() { bare.att.Close() })
	if bare.ak, err = bare.att.AKPublic(); err != nil {
		t.Fatal(err)
	}
	if bare.cert, err = bare.att.Certify(own.Public(), receipt.Qualifying()); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, tc{"no image: only the keys event", file(sign(t, own), bare.evidence(t)), bare.trust(), receipt.ErrEvidence})

	// 5. A boot that measured no keys (as before this format), the key
	// certified by the AK.
	nokeys := bootOn(t, swtpmtest.Start(t, swtpmtest.Options{Provision: true}), testImage, false)
	cases = append(cases, tc{"boot without a keys event", file(sign(t, nokeys.signer), nokeys.evidence(t)), nokeys.trust(), receipt.ErrEvidence})

	// 6. Version 2 files: a receipt and a certification.
	cases = append(cases, tc{"format 2 file", &receipt.File{Receipt: genuine.Receipt, Evidence: &receipt.Evidence{Certification: s.cert}}, s.trust(), receipt.ErrFormat})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receipt.VerifyFile(tc.f, tc.trust)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestOtherBootOrStick: a receipt is refused with the evidence of another
// boot of the same stick (another result key, same AK) or of another
// stick (another AK), and with tampered evidence.
func TestOtherBootOrStick(t *testing.T) {
	s := newStick(t)
	other := newStick(t)
	r := sign(t, s.signer)
	ev := s.evidence(t)
	if _, err := receipt.VerifyFile(file(r, ev), s.trust()); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	// Another stick's evidence, checked with either AK.
	otherEv := other.evidence(t)

	// Another boot of the same stick: its evidence, its certification,
	// and the old certification with the new quote.
	oldCert := s.cert
	s2 := reboot(t, s)
	if !bytes.Equal(s2.ak, s.ak) {
		t.Fatal("the AK changed across a reboot")
	}
	bootEv := s2.evidence(t)
	mixed := s2.evidence(t)
	mixed.Certification = oldCert
	// The stick of that boot signs its own receipts, which verify.
	if _, err := receipt.VerifyFile(file(sign(t, s2.signer), s2.evidence(t)), s2.trust()); err != nil {
		t.Fatalf("second boot's own receipt: %v", err)
	}

	otherGov := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	badManifests := *ev
	badManifests.Manifests = [][]byte{signedManifest(t, otherGov, 1, testImage)}
	badConfig := *ev
	badConfig.Config = []byte("version=other\nboard=swtpm\n")
	wrongVersion, err := s.signer.Sign("echo", testCID, "invoke", nil, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	unmeasured, err := s.signer.Sign("kv", testCID, "invoke", nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	release := s.trust()
	release.Release = signedManifest(t, gov, 2, testImage)
	noCert := *ev
	noCert.Certification = nil

	for _, tc := range []struct {
		name  string
		f     *receipt.File
		trust receipt.Trust
		want  error
	}{
		{"evidence of another boot", file(r, bootEv), s.trust(), receipt.ErrSignature},
		{"another boot's quote with this boot's certification", file(r, mixed), s.trust(), receipt.ErrSignature},
		{"evidence of another stick, this stick's AK", file(r, otherEv), s.trust(), receipt.ErrEvidence},
		{"evidence of another stick, its AK", file(r, otherEv), other.trust(), receipt.ErrSignature},
		{"this stick's evidence, another stick's AK", file(r, ev), other.trust(), receipt.ErrEvidence},
		{"manifests of another governance key", file(r, &badManifests), s.trust(), receipt.ErrManifests},
		{"configuration record differs", file(r, &badConfig), s.trust(), receipt.ErrEvidence},
		{"another release", file(r, ev), release, receipt.ErrRelease},
		{"manifest version of no manifest", file(wrongVersion, ev), s.trust(), receipt.ErrActorUnseen},
		{"actor not measured", file(unmeasured, ev), s.trust(), receipt.ErrActorUnseen},
		{"no certification", file(r, &noCert), s.trust(), receipt.ErrCertified},
		{"no evidence", file(r, nil), s.trust(), receipt.ErrNoEvidence},
		{"no receipt", file(nil, ev), s.trust(), receipt.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receipt.VerifyFile(tc.f, tc.trust)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func flip(b []byte, bit int) []byte {
	c := slices.Clone(b)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}

// otherHex changes one hex digit of h into another valid lowercase one.
func otherHex(h string, i int) string {
	b := []byte(h)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

// TestTamper: every kind of tampering with a receipt or its
// certification is rejected, with the error naming what failed.
func TestTamper(t *testing.T) {
	s := newStick(t)
	r := sign(t, s.signer)
	ev := s.evidence(t)
	var cases []struct {
		name string
		f    *receipt.File
		want error
	}
	add := func(name string, f *receipt.File, want error) {
		cases = append(cases, struct {
			name string
			f    *receipt.File
			want error
		}{name, f, want})
	}
	field := func(name string, mod func(*receipt.Receipt), want error) {
		c := *r
		mod(&c)
		add("receipt "+name, file(&c, ev), want)
	}
	field("actor", func(r *receipt.Receipt) { r.Actor = "echO" }, receipt.ErrSignature)
	field("actor moved into cid", func(r *receipt.Receipt) { r.Actor, r.CID = "ech", "o"+r.CID }, receipt.ErrSignature)
	field("cid", func(r *receipt.Receipt) { r.CID = r.CID[:len(r.CID)-1] + "a" }, receipt.ErrSignature)
	field("operation", func(r *receipt.Receipt) { r.Operation = "invokE" }, receipt.ErrSignature)
	for i := range 64 {
		field("input_sha256", func(r *receipt.Receipt) { r.InputSHA256 = otherHex(r.InputSHA256, i) }, receipt.ErrSignature)
		field("output_sha256", func(r *receipt.Receipt) { r.OutputSHA256 = otherHex(r.OutputSHA256, i) }, receipt.ErrSignature)
	}
	field("input_sha256 in uppercase", func(r *receipt.Receipt) { r.InputSHA256 = strings.ToUpper(r.InputSHA256) }, receipt.ErrMalformed)
	field("output_sha256 truncated", func(r *receipt.Receipt) { r.OutputSHA256 = r.OutputSHA256[:62] }, receipt.ErrMalformed)
	for bit := range 64 {
		field("manifest_version", func(r *receipt.Receipt) { r.ManifestVersion ^= 1 << bit }, receipt.ErrSignature)
		field("counter", func(r *receipt.Receipt) { r.Counter ^= 1 << bit }, receipt.ErrSignature)
	}
	for bit := range 8 * len(r.Signature) {
		field("signature", func(r *receipt.Receipt) { r.Signature = flip(r.Signature, bit) }, receipt.ErrSignature)
	}
	field("no signature", func(r *receipt.Receipt) { r.Signature = nil }, receipt.ErrSignature)
	cert := func(c *attest.Certification) *receipt.File {
		e := *ev
		e.Certification = c
		return file(r, &e)
	}
	for bit := range 8 * len(s.cert.Attest) {
		add("certification attest", cert(&attest.Certification{Key: s.cert.Key, Attest: flip(s.cert.Attest, bit), Signature: s.cert.Signature}), verify.ErrCertSignature)
	}
	for bit := range 8 * len(s.cert.Signature) {
		add("certification signature", cert(&attest.Certification{Key: s.cert.Key, Attest: s.cert.Attest, Signature: flip(s.cert.Signature, bit)}), verify.ErrCertSignature)
	}
	wrongQ, err := s.att.Certify(s.signer.Public(), []byte("another label"))
	if err != nil {
		t.Fatal(err)
	}
	add("certified with other qualifying data", cert(wrongQ), verify.ErrCertQualifying)
	add("certification key not DER", cert(&attest.Certification{Key: s.cert.Key[1:], Attest: s.cert.Attest, Signature: s.cert.Signature}), verify.ErrCertKey)
	for bit := 0; bit < 8*len(ev.Attestation.Quote); bit += 7 {
		e := *ev
		a := *ev.Attestation
		a.Quote = flip(a.Quote, bit)
		e.Attestation = &a
		add("quote", file(r, &e), receipt.ErrEvidence)
	}
	add("nonce", func() *receipt.File { e := *ev; e.Nonce = flip(e.Nonce, 3); return file(r, &e) }(), receipt.ErrEvidence)
	logged := map[string]bool{}
	for _, tc := range cases {
		_, err := receipt.VerifyFile(tc.f, s.trust())
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !logged[tc.name] {
			logged[tc.name] = true
			t.Logf("%-40s %.200v", tc.name+":", err)
		}
	}
	if _, err := receipt.VerifyFile(file(r, ev), s.trust()); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNeedsEd25519Key(t *testing.T) {
	s := newSigner(t)
	r := sign(t, s)
	if err := receipt.Verify(r, nil); !errors.Is(err, receipt.ErrNoResultKey) {
		t.Errorf("nil key: %v", err)
	}
	for _, n := range []int{31, 33, 65} {
		if err := receipt.Verify(r, make([]byte, n)); !errors.Is(err, receipt.ErrResultKeyType) {
			t.Errorf("key of %d bytes: %v", n, err)
		}
	}
	for _, sig := range [][]byte{nil, r.Signature[:63], append(slices.Clone(r.Signature), 0)} {
		bad := *r
		bad.Signature = sig
		if err := receipt.Verify(&bad, s.Public()); !errors.Is(err, receipt.ErrSignature) {
			t.Errorf("signature of %d bytes: %v", len(sig), err)
		}
	}
}

// TestSignStatement: the result key signs an actor's statement, which
// verifies as Ed25519 over exactly that message, and refuses one that
// could pass for a receipt.
func TestSignStatement(t *testing.T) {
	s := newSigner(t)
	msg := []byte("teastick/actor-signature/v1\x00statement")
	sig, err := s.SignStatement(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(s.Public(), msg, sig) {
		t.Fatal("statement signature does not verify")
	}
	r := sign(t, s)
	m, err := r.Message()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignStatement(m); !errors.Is(err, receipt.ErrStatementDomain) {
		t.Fatalf("signed a receipt message as a statement: %v", err)
	}
	if s.Count() != 1 {
		t.Fatalf("counter %d after one receipt and statements", s.Count())
	}
}

func TestCheckInput(t *testing.T) {
	r := sign(t, newSigner(t))
	for _, tc := range []struct {
		name          string
		input, output string
		want          error
	}{
		{"same bytes", "input", "output", nil},
		{"other input", "inpuT", "output", receipt.ErrInputMismatch},
		{"other output", "input", "outpuT", receipt.ErrOutputMismatch},
		{"swapped", "output", "input", receipt.ErrInputMismatch},
	} {
		if err := receipt.CheckInput(r, []byte(tc.input), []byte(tc.output)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	bad := *r
	bad.OutputSHA256 = "xyz"
	if err := receipt.CheckInput(&bad, []byte("input"), []byte("output")); !errors.Is(err, receipt.ErrMalformed) {
		t.Errorf("malformed hash: %v", err)
	}
}

func TestMessage(t *testing.T) {
	in, out := sha256.Sum256([]byte("i")), sha256.Sum256([]byte("o"))
	r := &receipt.Receipt{Actor: "a", CID: "bc", Operation: "", InputSHA256: hex.EncodeToString(in[:]),
		OutputSHA256: hex.EncodeToString(out[:]), ManifestVersion: 0x0102030405060708, Counter: 42}
	var want []byte
	want = append(want, "teastick/receipt/v3\x00"...)
	want = append(want, 0, 0, 0, 1, 'a', 0, 0, 0, 2, 'b', 'c', 0, 0, 0, 0)
	want = append(want, in[:]...)
	want = append(want, out[:]...)
	want = binary.BigEndian.AppendUint64(want, 0x0102030405060708)
	want = binary.BigEndian.AppendUint64(want, 42)
	got, err := r.Message()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("message\n %x\nwant\n %x", got, want)
	}
	// The signature is not part of the message.
	r.Signature = []byte("sig")
	if again, _ := r.Message(); !bytes.Equal(again, want) {
		t.Fatal("message depends on the signature")
	}

	for _, h := range []string{"", "00", strings.Repeat("0", 63), strings.Repeat("0", 65), strings.Repeat("A", 64), strings.Repeat("g", 64), strings.Repeat("0", 62) + "\x00\x00", strings.Repeat("é", 32)} {
		bad := *r
		bad.InputSHA256 = h
		if _, err := bad.Message(); !errors.Is(err, receipt.ErrMalformed) {
			t.Errorf("input_sha256 %q: %v", h, err)
		}
		bad = *r
		bad.OutputSHA256 = h
		if _, err := bad.Message(); !errors.Is(err, receipt.ErrMalformed) {
			t.Errorf("output_sha256 %q: %v", h, err)
		}
	}
}

func TestQualifying(t *testing.T) {
	want := sha256.Sum256([]byte("teastick/result-key/v1"))
	if !bytes.Equal(receipt.Qualifying(), want[:]) {
		t.Fatalf("%x", receipt.Qualifying())
	}
}

func TestSignerCounter(t *testing.T) {
	s := newSigner(t)
	const goroutines, each = 8, 1000
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[uint64]bool{}
		errs = make(chan error, goroutines)
		rs   = make([]*receipt.Receipt, 0, goroutines*each)
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r, err := s.Sign("actor", testCID, "op", []byte{byte(g)}, []byte{byte(i)}, 1)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[r.Counter] {
					mu.Unlock()
					errs <- errors.New("counter repeated")
					return
				}
				seen[r.Counter] = true
				rs = append(rs, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for c := uint64(1); c <= goroutines*each; c++ {
		if !seen[c] {
			t.Fatalf("counter %d missing (%d receipts)", c, len(seen))
		}
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d counters", len(seen))
	}
	key := s.Public()
	for i, r := range rs {
		if i%97 != 0 { // a sample: verification is what takes time
			continue
		}
		if err := receipt.Verify(r, key); err != nil {
			t.Fatalf("receipt %d: %v", r.Counter, err)
		}
	}
	if r := sign(t, s); r.Counter != goroutines*each+1 {
		t.Fatalf("next counter %d", r.Counter)
	}
}

func TestSignersDiffer(t *testing.T) {
	a, b := newSigner(t), newSigner(t)
	if bytes.Equal(a.PublicDER(), b.PublicDER()) {
		t.Fatal("two signers with one key")
	}
	d := a.PublicDER()
	d[0] ^= 0xff
	if bytes.Equal(d, a.PublicDER()) {
		t.Fatal("PublicDER returns the signer's own slice")
	}
}

// TestRollbackCounter: a receipt file's evidence carries the AK's
// certification of the TPM's rollback counter, checked as `teactl stick
// attest` checks it: a counter certified by the enrolled AK in the
// evidence's boot, not above the version of the manifest the stick
// served. A counter above it, one certified in another boot or by another
// stick's AK, or none, is refused.
func TestRollbackCounter(t *testing.T) {
	s := newStick(t)
	other := newStick(t)
	r := sign(t, s.signer)
	ev := s.evidence(t)
	v, err := receipt.VerifyFile(file(r, ev), s.trust())
	if err != nil {
		t.Fatalf("genuine: %v", err)
	}
	if v.RollbackCounter != 1 {
		t.Errorf("verdict's rollback counter %d, want 1", v.RollbackCounter)
	}
	otherStick := *ev
	otherStick.RollbackCounter = other.counter
	none := *ev
	none.RollbackCounter = nil

	oldCounter := s.counter
	s2 := reboot(t, s)
	r2 := sign(t, s2.signer)
	ev2 := s2.evidence(t)
	if _, err := receipt.VerifyFile(file(r2, ev2), s2.trust()); err != nil {
		t.Fatalf("second boot, genuine: %v", err)
	}
	otherBoot := *ev2
	otherBoot.RollbackCounter = oldCounter

	// The TPM's floor raised past the manifest the evidence shows the
	// stick serving: a stick that did not enforce its floor.
	s2.raiseCounter(t, 3)
	stale := s2.evidence(t)

	for _, tc := range []struct {
		name string
		f    *receipt.File
		tr   receipt.Trust
		want error
	}{
		{"served manifest older than the counter", file(r2, stale), s2.trust(), receipt.ErrRollback},
		{"counter certified in another boot", file(r2, &otherBoot), s2.trust(), receipt.ErrCounter},
		{"counter certified by another stick's AK", file(r, &otherStick), s.trust(), receipt.ErrCounter},
		{"no counter", file(r, &none), s.trust(), receipt.ErrCounter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receipt.VerifyFile(tc.f, tc.tr)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}
