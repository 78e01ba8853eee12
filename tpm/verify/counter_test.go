package verify

import (
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/nvcounter"
)

// CertifiedCounter accepts the stick's certification of its counter and
// refuses each way another one can differ, naming which.
func TestCertifiedCounter(t *testing.T) {
	s := bootStick(t, "", []byte("image"))
	ak := enrol(t, s)
	counter, err := nvcounter.Open(s.tpm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := counter.Raise(4); err != nil {
		t.Fatal(err)
	}
	q := attest.CounterQualifying(s.ck)
	good, err := s.att.CertifyNV(nvcounter.Index, counter.Name(), 8, q)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := CertifiedCounter(ak, good, q); err != nil || v != 4 {
		t.Fatalf("the stick's certification: %d, %v; want 4", v, err)
	}

	// An ordinary 8-byte index at another handle, certified by the same
	// AK: right form, wrong index.
	other := tpm2.TPMSNVPublic{NVIndex: nvcounter.Index + 1, NameAlg: tpm2.TPMAlgSHA256, DataSize: 8,
		Attributes: tpm2.TPMANV{NT: tpm2.TPMNTOrdinary, AuthWrite: true, AuthRead: true, NoDA: true}}
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: owner, PublicInfo: tpm2.New2B(other)}).Execute(s.tpm); err != nil {
		t.Fatal(err)
	}
	name, _ := tpm2.NVName(&other)
	if _, err := (tpm2.NVWrite{AuthHandle: tpm2.AuthHandle{Handle: other.NVIndex, Name: *name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex: tpm2.NamedHandle{Handle: other.NVIndex, Name: *name}, Data: tpm2.TPM2BMaxNVBuffer{Buffer: make([]byte, 8)}}).Execute(s.tpm); err != nil {
		t.Fatal(err)
	}
	written := other
	written.Attributes.Written = true
	wname, _ := tpm2.NVName(&written)
	foreign, err := s.att.CertifyNV(other.NVIndex, *wname, 8, q)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.att.Certify(s.rk, q)
	if err != nil {
		t.Fatal(err)
	}
	flipped := *good
	flipped.Attest = append([]byte(nil), good.Attest...)
	flipped.Attest[len(flipped.Attest)-1] ^= 1

	for _, tc := range []struct {
		name       string
		c          *attest.NVCertification
		ak, qualif []byte
		want       error
	}{
		{"missing", nil, ak, q, ErrNoCounter},
		{"not an AK", good, []byte("junk"), q, ErrCounterAK},
		{"counter value changed", &flipped, ak, q, ErrCounterSignature},
		{"another boot's channel key", good, ak, attest.CounterQualifying([]byte("other key")), ErrCounterQualifying},
		{"another index", foreign, ak, q, ErrCounterIndex},
		{"a key certification", &attest.NVCertification{Attest: key.Attest, Signature: key.Signature}, ak, q, ErrCounterAttest},
	} {
		if _, _, err := CertifiedCounter(tc.ak, tc.c, tc.qualif); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzCertifiedCounter feeds arbitrary certifications to CertifiedCounter:
// it must refuse them, never panic.
func FuzzCertifiedCounter(f *testing.F) {
	ak := tpm2.Marshal(attest.AKTemplate)
	f.Add([]byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x14}, []byte{0, 0x18, 0, 0x0b})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, at, sig []byte) {
		if _, _, err := CertifiedCounter(ak, &attest.NVCertification{Attest: at, Signature: sig}, []byte("q")); err == nil {
			t.Fatal("a fuzzed certification was accepted")
		}
	})
}
