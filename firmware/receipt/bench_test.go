package receipt_test

import (
	"testing"

	"github.com/teastick/teastick/firmware/receipt"
)

// Run with go test ./firmware/receipt -run XXX -bench .
// BenchmarkCertify runs against swtpm over its Unix socket.

func BenchmarkSign(b *testing.B) {
	s := newSigner(b)
	in, out := make([]byte, 1024), make([]byte, 1024)
	for b.Loop() {
		if _, err := s.Sign("echo", testCID, "invoke", in, out, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignParallel(b *testing.B) {
	s := newSigner(b)
	in, out := make([]byte, 1024), make([]byte, 1024)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Sign("echo", testCID, "invoke", in, out, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	s := newSigner(b)
	r := sign(b, s)
	key := s.Public()
	for b.Loop() {
		if err := receipt.Verify(r, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFile is a receipt checked offline with its evidence:
// the manifests' signatures, the quote, the log's replay and reference
// measurements, the measured result key, the receipt's signature and the
// certification.
func BenchmarkVerifyFile(b *testing.B) {
	s := newStick(b)
	f := file(sign(b, s.signer), s.evidence(b))
	tr := s.trust()
	for b.Loop() {
		if _, err := receipt.VerifyFile(f, tr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCertify(b *testing.B) {
	s := newStick(b) // the AK is loaded
	key := s.signer.Public()
	for b.Loop() {
		if _, err := s.att.Certify(key, receipt.Qualifying()); err != nil {
			b.Fatal(err)
		}
	}
}
