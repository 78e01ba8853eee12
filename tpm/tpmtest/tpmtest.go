// Package tpmtest is the conformance test every transport.TPM of teastick
// passes: the TIS driver over a register model forwarding to swtpm, and
// swtpm's socket directly. It talks to a real TPM (swtpm), not a fake.
package tpmtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Startup sends TPM2_Startup(CLEAR) and treats TPM_RC_INITIALIZE (the TPM
// was already started) as success. It is measure.Startup without the
// wrapping: tpmtest cannot import measure, which imports eventlog, whose
// in-package tests import tpmtest.
func Startup(tpm transport.TPM) error {
	_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(tpm)
	if errors.Is(err, tpm2.TPMRCInitialize) {
		return nil
	}
	return err
}

// Run runs the conformance cases against transports made by open, each
// case on a fresh transport to a started TPM with the SHA-256 PCR bank.
func Run(t *testing.T, open func(t *testing.T) transport.TPM) {
	cases := []struct {
		name string
		run  func(t *testing.T, tpm transport.TPM)
	}{
		{"startup twice", func(t *testing.T, tpm transport.TPM) {
			for i := 0; i < 2; i++ {
				if err := Startup(tpm); err != nil {
					t.Fatalf("Startup %d: %v", i, err)
				}
			}
		}},
		{"get random", func(t *testing.T, tpm transport.TPM) {
			a, err := tpm2.GetRandom{BytesRequested: 32}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			b, err := tpm2.GetRandom{BytesRequested: 32}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.RandomBytes.Buffer) != 32 || bytes.Equal(a.RandomBytes.Buffer, b.RandomBytes.Buffer) {
				t.Fatalf("random %x then %x", a.RandomBytes.Buffer, b.RandomBytes.Buffer)
			}
		}},
		{"tpm error code passes through", func(t *testing.T, tpm transport.TPM) {
			_, err := tpm2.FlushContext{FlushHandle: tpm2.TPMHandle(0x80ffffff)}.Execute(tpm)
			var rc tpm2.TPMRC
			if !errors.As(err, &rc) {
				t.Fatalf("FlushContext of a missing handle: %v, want a TPM response code", err)
			}
		}},
		{"pcr extend then read", func(t *testing.T, tpm transport.TPM) {
			sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(14)}}}
			before, err := tpm2.PCRRead{PCRSelectionIn: sel}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256([]byte("conformance"))
			_, err = tpm2.PCRExtend{
				PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(14), Auth: tpm2.PasswordAuth(nil)},
				Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
			}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			after, err := tpm2.PCRRead{PCRSelectionIn: sel}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(append(bytes.Clone(before.PCRValues.Digests[0].Buffer), d[:]...))
			if got := after.PCRValues.Digests[0].Buffer; !bytes.Equal(got, want[:]) {
				t.Fatalf("PCR 14 = %x, want %x", got, want)
			}
		}},
		{"large command and response", func(t *testing.T, tpm transport.TPM) {
			// 1 KiB of data crosses every small burst size; the response
			// (a TPM2B public area plus creation data) is several hundred bytes.
			data := bytes.Repeat([]byte{0xa5}, 1024)
			h, err := tpm2.Hash{Data: tpm2.TPM2BMaxBuffer{Buffer: data}, HashAlg: tpm2.TPMAlgSHA256, Hierarchy: tpm2.TPMRHNull}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(data)
			if !bytes.Equal(h.OutHash.Buffer, want[:]) {
				t.Fatalf("TPM2_Hash = %x, want %x", h.OutHash.Buffer, want)
			}
			cp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(tpm)
			if err != nil {
				t.Fatal(err)
			}
			defer tpm2.FlushContext{FlushHandle: cp.ObjectHandle}.Execute(tpm)
			if len(cp.OutPublic.Bytes()) < 64 {
				t.Fatalf("public area of %d bytes", len(cp.OutPublic.Bytes()))
			}
		}},
		{"many commands", func(t *testing.T, tpm transport.TPM) {
			for i := 0; i < 50; i++ {
				if _, err := (tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTFamilyIndicator), PropertyCount: 8}).Execute(tpm); err != nil {
					t.Fatalf("command %d: %v", i, err)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tpm := open(t)
			if err := Startup(tpm); err != nil {
				t.Fatalf("Startup: %v", err)
			}
			tc.run(t, tpm)
		})
	}
}
