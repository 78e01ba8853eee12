package receipt_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/teastick/teastick/firmware/receipt"
)

// FuzzReceiptJSON decodes arbitrary JSON as a receipt: Message, Verify and
// CheckInput never panic, fail only as documented, and Message survives a
// JSON round trip unchanged.
func FuzzReceiptJSON(f *testing.F) {
	s, err := receipt.NewSigner(nil)
	if err != nil {
		f.Fatal(err)
	}
	r, err := s.Sign("echo", testCID, "invoke", []byte("in"), []byte("out"), 3)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(r)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"actor":"a","input_sha256":"` + string(bytes.Repeat([]byte("A"), 64)) + `"}`))
	f.Add([]byte(`{"counter":-1,"signature":"!!"}`))
	f.Add([]byte(`{"actor":"\u0000","cid":"\ud800","manifest_version":18446744073709551615}`))
	key := s.Public()
	f.Fuzz(func(t *testing.T, data []byte) {
		var r receipt.Receipt
		if json.Unmarshal(data, &r) != nil {
			return
		}
		m, err := r.Message()
		if err != nil {
			if !errors.Is(err, receipt.ErrMalformed) {
				t.Fatalf("Message: %v", err)
			}
			if !errors.Is(receipt.Verify(&r, key), receipt.ErrMalformed) {
				t.Fatal("Verify accepted a receipt without a message")
			}
			return
		}
		if err := receipt.Verify(&r, key); err != nil && !errors.Is(err, receipt.ErrSignature) {
			t.Fatalf("Verify: %v", err)
		} else if err == nil && !bytes.Equal(data, good) {
			// Only the seed is signed; another encoding of it must
			// carry the same message.
			want, _ := json.Marshal(&r)
			if !bytes.Equal(want, good) {
				t.Fatalf("verified a receipt that is not the signed one: %s", data)
			}
		}
		_ = receipt.CheckInput(&r, data, data)
		again, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 receipt.Receipt
		if err := json.Unmarshal(again, &r2); err != nil {
			t.Fatal(err)
		}
		m2, err := r2.Message()
		if err != nil || !bytes.Equal(m, m2) {
			t.Fatalf("message changed across a JSON round trip (%v): %q -> %q", err, m, m2)
		}
	})
}

// FuzzMessageInjective: two receipts with the same message have the same
// fields (the encoding is unambiguous).
func FuzzMessageInjective(f *testing.F) {
	f.Add("ab", "c", "op", []byte("i"), []byte("o"), uint64(1), uint64(2), "a", "bc", "op", []byte("i"), []byte("o"), uint64(1), uint64(2))
	f.Add("", "", "", []byte{}, []byte{}, uint64(0), uint64(0), "", "", "\x00", []byte{}, []byte{}, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, a1, c1, o1 string, i1, x1 []byte, v1, n1 uint64, a2, c2, o2 string, i2, x2 []byte, v2, n2 uint64) {
		mk := func(a, c, o string, i, x []byte, v, n uint64) (*receipt.Receipt, []byte) {
			hi, hx := sha256.Sum256(i), sha256.Sum256(x)
			r := &receipt.Receipt{Actor: a, CID: c, Operation: o, InputSHA256: hex.EncodeToString(hi[:]),
				OutputSHA256: hex.EncodeToString(hx[:]), ManifestVersion: v, Counter: n}
			m, err := r.Message()
			if err != nil {
				t.Fatal(err)
			}
			return r, m
		}
		r1, m1 := mk(a1, c1, o1, i1, x1, v1, n1)
		r2, m2 := mk(a2, c2, o2, i2, x2, v2, n2)
		same := r1.Actor == r2.Actor && r1.CID == r2.CID && r1.Operation == r2.Operation &&
			r1.InputSHA256 == r2.InputSHA256 && r1.OutputSHA256 == r2.OutputSHA256 &&
			r1.ManifestVersion == r2.ManifestVersion && r1.Counter == r2.Counter
		if bytes.Equal(m1, m2) != same {
			t.Fatalf("messages equal %v, receipts equal %v: %+v %+v", bytes.Equal(m1, m2), same, r1, r2)
		}
	})
}

// FuzzVerifyFile decodes arbitrary JSON as a receipt file and verifies it
// against a genuine stick's AK and the governance key: it never panics,
// and whatever it accepts is signed by the key that stick measured.
func FuzzVerifyFile(f *testing.F) {
	s := newStick(f)
	good, err := json.Marshal(file(sign(f, s.signer), s.evidence(f)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":4,"receipt":{},"evidence":{"attestation":{}}}`))
	f.Add([]byte(`{"format":4,"receipt":{"actor":"echo"},"evidence":{"manifests":["e30="],"attestation":{"EventLog":"AAAA"}}}`))
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(`{"format":3}`))
	f.Add([]byte(`{"format":4,"receipt":{"actor":"echo"},"evidence":{"rollback_counter":{"attest":"AAAA","signature":"AAAA"},"attestation":{}}}`))
	tr := s.trust()
	key := s.signer.Public()
	f.Fuzz(func(t *testing.T, data []byte) {
		var rf receipt.File
		if json.Unmarshal(data, &rf) != nil {
			return
		}
		v, err := receipt.VerifyFile(&rf, tr)
		if err != nil {
			return
		}
		if v == nil || !v.OK() || !v.Keys.Result.Equal(key) || receipt.Verify(rf.Receipt, key) != nil {
			t.Fatalf("accepted a file not signed by the measured key: %s", data)
		}
	})
}
