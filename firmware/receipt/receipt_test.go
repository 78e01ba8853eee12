package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// stick is a swtpm with an Attester and a result key it certified, as the
// stick has after boot.
type stick struct {
	att    *attest.Attester
	ak     []byte
	signer *receipt.Signer
	cert   *attest.Certification
}

func newStick(t testing.TB) *stick {
	t.Helper()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	if err := measure.Startup(tpm); err != nil {
		t.Fatal(err)
	}
	a := &attest.Attester{TPM: tpm}
	t.Cleanup(func() { a.Close() })
	ak, err := a.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t)
	c, err := a.Certify(s.Public(), receipt.Qualifying())
	if err != nil {
		t.Fatal(err)
	}
	return &stick{att: a, ak: ak, signer: s, cert: c}
}

func newSigner(t testing.TB) *receipt.Signer {
	t.Helper()
	s, err := receipt.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

func sign(t testing.TB, s *receipt.Signer) *receipt.Receipt {
	t.Helper()
	r, err := s.Sign("echo", testCID, "invoke", []byte("input"), []byte("output"), 7)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	s := newStick(t)
	r := sign(t, s.signer)
	if r.Counter != 1 || r.Actor != "echo" || r.CID != testCID || r.Operation != "invoke" || r.ManifestVersion != 7 {
		t.Fatalf("receipt %+v", r)
	}
	if want := sha256.Sum256([]byte("input")); r.InputSHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("input_sha256 %s", r.InputSHA256)
	}
	if !bytes.Equal(s.cert.Key, s.signer.PublicDER()) {
		t.Fatal("certification names another key than the signer's")
	}
	if err := receipt.VerifyCertified(r, s.cert, s.ak); err != nil {
		t.Fatal(err)
	}
	if err := receipt.CheckInput(r, []byte("input"), []byte("output")); err != nil {
		t.Fatal(err)
	}

	// Offline: everything travels as JSON.
	var (
		r2 receipt.Receipt
		c2 attest.Certification
	)
	rj, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(s.cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{`"actor"`, `"cid"`, `"operation"`, `"input_sha256"`, `"output_sha256"`, `"manifest_version"`, `"counter"`, `"signature"`} {
		if !bytes.Contains(rj, []byte(f)) {
			t.Errorf("receipt JSON lacks %s: %s", f, rj)
		}
	}
	for _, f := range []string{`"key"`, `"attest"`, `"signature"`} {
		if !bytes.Contains(cj, []byte(f)) {
			t.Errorf("certification JSON lacks %s: %s", f, cj)
		}
	}
	if err := json.Unmarshal(rj, &r2); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cj, &c2); err != nil {
		t.Fatal(err)
	}
	if err := receipt.VerifyCertified(&r2, &c2, s.ak); err != nil {
		t.Fatal(err)
	}
	t.Logf("receipt %d bytes of JSON, certification %d", len(rj), len(cj))
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

// TestTamper: every kind of tampering is rejected, with the error naming
// what failed. A flipped bit in a receipt field and in its signature are
// the same failure to a verifier (the signature does not cover the
// receipt), likewise in the attestation and in the AK's signature.
func TestTamper(t *testing.T) {
	s := newStick(t)
	other := newStick(t) // another TPM
	r := sign(t, s.signer)

	// The same result key certified by another TPM's AK, and with other
	// qualifying data by the right AK.
	byOther, err := other.att.Certify(s.signer.Public(), receipt.Qualifying())
	if err != nil {
		t.Fatal(err)
	}
	wrongQ, err := s.att.Certify(s.signer.Public(), []byte("another label"))
	if err != nil {
		t.Fatal(err)
	}
	// Another key, certified (by the same AK) or not.
	s2 := newSigner(t)
	cert2, err := s.att.Certify(s2.Public(), receipt.Qualifying())
	if err != nil {
		t.Fatal(err)
	}
	r2 := sign(t, s2)

	type tc struct {
		name string
		r    *receipt.Receipt
		c    *attest.Certification
		ak   []byte
		want error
	}
	var cases []tc
	field := func(name string, mod func(*receipt.Receipt), want error) {
		c := *r
		mod(&c)
		cases = append(cases, tc{"receipt " + name, &c, s.cert, s.ak, want})
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
	for bit := range 8 * len(s.cert.Attest) {
		cases = append(cases, tc{"certification attest", r, &attest.Certification{Key: s.cert.Key, Attest: flip(s.cert.Attest, bit), Signature: s.cert.Signature}, s.ak, verify.ErrCertSignature})
	}
	for bit := range 8 * len(s.cert.Signature) {
		cases = append(cases, tc{"certification signature", r, &attest.Certification{Key: s.cert.Key, Attest: s.cert.Attest, Signature: flip(s.cert.Signature, bit)}, s.ak, verify.ErrCertSignature})
	}
	cases = append(cases,
		tc{"certification key: another key (uncertified)", r2, &attest.Certification{Key: s2.PublicDER(), Attest: s.cert.Attest, Signature: s.cert.Signature}, s.ak, verify.ErrCertName},
		tc{"receipt signed by another certified key", r2, s.cert, s.ak, receipt.ErrSignature},
		tc{"receipt with another key's certification", r, cert2, s.ak, receipt.ErrSignature},
		tc{"certification key not DER", r, &attest.Certification{Key: s.cert.Key[1:], Attest: s.cert.Attest, Signature: s.cert.Signature}, s.ak, verify.ErrCertKey},
		tc{"certified by another TPM's AK", r, byOther, s.ak, verify.ErrCertSignature},
		tc{"checked against another TPM's AK", r, s.cert, other.ak, verify.ErrCertSignature},
		tc{"certified with other qualifying data", r, wrongQ, s.ak, verify.ErrCertQualifying},
		tc{"no certification", r, nil, s.ak, verify.ErrNoCertification},
		tc{"no AK", r, s.cert, nil, verify.ErrCertAK},
		tc{"no receipt", nil, s.cert, s.ak, receipt.ErrMalformed},
	)
	logged := map[string]bool{}
	for _, tc := range cases {
		err := receipt.VerifyCertified(tc.r, tc.c, tc.ak)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !logged[tc.name] {
			logged[tc.name] = true
			t.Logf("%-48s %v", tc.name+":", err)
		}
	}
	// Sanity: the untampered inputs of the cases above are fine.
	for _, c := range []struct {
		r *receipt.Receipt
		c *attest.Certification
	}{{r, s.cert}, {r2, cert2}} {
		if err := receipt.VerifyCertified(c.r, c.c, s.ak); err != nil {
			t.Fatal(err)
		}
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
	want = append(want, "teastick/receipt/v2\x00"...)
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
