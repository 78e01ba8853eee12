package verify

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/nvcounter"
)

// Benchmarks run against swtpm over its Unix socket. Run with
// go test ./tpm/verify -run XXX -bench .

func BenchmarkPCRExtend(b *testing.B) {
	s := bootStick(b, "", []byte("image"))
	d := sha256.Sum256([]byte("x"))
	b.ResetTimer()
	for b.Loop() {
		if _, err := (tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(measure.PCRRuntime), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
		}).Execute(s.tpm); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAKCreate(b *testing.B) {
	s := bootStick(b, "", []byte("image"))
	for b.Loop() {
		ak, err := s.att.AK()
		if err != nil {
			b.Fatal(err)
		}
		if err := ak.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQuote(b *testing.B) {
	s := bootStick(b, "", []byte("image"))
	q := attest.QualifyingData([]byte("nonce"), []byte("key"))
	for b.Loop() {
		if _, _, err := s.att.Quote(q, measure.PlanPCRs()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttestRoundTrip measures nonce to verdict (quote, PCR reads,
// verification of every check) and reports it as a ratio to a bare
// TPM2_Quote of the same PCRs measured in the same run (goal <= 1.5).
func BenchmarkAttestRoundTrip(b *testing.B) {
	image := []byte("image")
	s := bootStick(b, "", image, "echo")
	ak := enrol(b, s)
	ck := s.ck
	ref := reference(image, []string{"echo"})
	log, pcrs := s.m.Log(), s.m.PCRs()
	q := attest.QualifyingData([]byte("nonce"), ck)
	if _, _, err := s.att.Quote(q, measure.PlanPCRs()); err != nil {
		b.Fatal(err)
	}
	var bare, round time.Duration
	nonce := make([]byte, 16)
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, _, err := s.att.Quote(q, measure.PlanPCRs()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		nonce[0], nonce[1] = byte(i), byte(i>>8)
		ev, err := s.att.Attest(nonce, ck, log, pcrs)
		if err != nil {
			b.Fatal(err)
		}
		if v := Verify(ev, Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: ref}); !v.OK() {
			b.Fatalf("verdict:\n%s", v)
		}
		bare += t1.Sub(t0)
		round += time.Since(t1)
	}
	b.ReportMetric(float64(round)/float64(bare), "roundtrip/quote")
	b.ReportMetric(float64(bare.Microseconds())/float64(b.N), "quote-µs/op")
}

// BenchmarkCheckRollback is what checking the rollback counter adds to a
// verification (Verdict.CheckRollback: the AK's signature over the
// counter's certification, its form, same boot as the quote), as a ratio
// to a bare TPM2_Quote measured in the same run. The stick sends a
// certification it made once after the counter moved: no TPM command per
// attestation, like the result key's (CertifiedKey, also checked apart
// from BenchmarkAttestRoundTrip).
func BenchmarkCheckRollback(b *testing.B) {
	s := bootStick(b, "", []byte("image"))
	ak := enrol(b, s)
	counter, err := nvcounter.Open(s.tpm)
	if err != nil {
		b.Fatal(err)
	}
	cc, err := s.att.CertifyNV(nvcounter.Index, counter.Name(), 8, attest.CounterQualifying(s.ck))
	if err != nil {
		b.Fatal(err)
	}
	q := attest.QualifyingData([]byte("nonce"), s.ck)
	quote, _, err := s.att.Quote(q, measure.PlanPCRs())
	if err != nil {
		b.Fatal(err)
	}
	var bare, check time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := s.att.Quote(q, measure.PlanPCRs()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		v := &Verdict{}
		if v.CheckRollback(ak, cc, s.ck, quote, counter.Value(), 0); !v.OK() {
			b.Fatalf("verdict:\n%s", v)
		}
		bare += t1.Sub(t0)
		check += time.Since(t1)
	}
	b.ReportMetric(float64(check)/float64(bare), "rollback-check/quote")
	b.ReportMetric(float64(check.Microseconds())/float64(b.N), "check-µs/op")
}
