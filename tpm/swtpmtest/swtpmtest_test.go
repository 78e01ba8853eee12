package swtpmtest

import (
	"testing"

	"github.com/google/go-tpm/tpm2"
)

func TestStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		provision bool
		ekCert    bool
	}{
		{"fresh", false, false},
		{"provisioned", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Provision: tc.provision})
			tpm := s.OpenT(t)
			rsp, err := tpm2.GetRandom{BytesRequested: 16}.Execute(tpm)
			if err != nil {
				t.Fatalf("GetRandom: %v\n%s", err, s.Log())
			}
			if len(rsp.RandomBytes.Buffer) != 16 {
				t.Fatalf("got %d random bytes", len(rsp.RandomBytes.Buffer))
			}
			_, err = tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(0x01c00002)}.Execute(tpm)
			if got := err == nil; got != tc.ekCert {
				t.Fatalf("EK certificate present = %v (%v), want %v", got, err, tc.ekCert)
			}
			if tc.provision {
				if _, err := s.CABundle(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
