package attest

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// TestAKSameEveryBoot restarts the TPM (a new swtpm process on the same
// state, as a reboot does) and checks the AK is the same key, with nothing
// stored in NV, while another TPM's AK differs.
func TestAKSameEveryBoot(t *testing.T) {
	state := t.TempDir()
	akOf := func(opts swtpmtest.Options) []byte {
		sw := swtpmtest.Start(t, opts)
		defer sw.Stop()
		tpm := sw.OpenT(t)
		if err := measure.Startup(tpm); err != nil {
			t.Fatal(err)
		}
		a := &Attester{TPM: tpm}
		defer a.Close()
		pub, err := a.AKPublic()
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	first := akOf(swtpmtest.Options{Provision: true, StateDir: state})
	for _, tc := range []struct {
		name string
		opts swtpmtest.Options
		same bool
	}{
		{"same TPM after restart", swtpmtest.Options{StateDir: state}, true},
		{"another TPM", swtpmtest.Options{Provision: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := akOf(tc.opts); bytes.Equal(got, first) != tc.same {
				t.Fatalf("AK equal = %v, want %v", !tc.same, tc.same)
			}
		})
	}
}

func TestEKCertificate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		provision bool
		ok        bool
	}{
		{"provisioned", true, true},
		{"fresh TPM has none", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw := swtpmtest.Start(t, swtpmtest.Options{Provision: tc.provision})
			a := &Attester{TPM: sw.OpenT(t)}
			der, err := a.EKCertificate(EKCertIndexRSA)
			if !tc.ok {
				if !errors.Is(err, ErrNoEKCert) {
					t.Fatalf("fresh TPM: %v, want ErrNoEKCert", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			ek, err := a.EK()
			if err != nil {
				t.Fatal(err)
			}
			defer ek.Flush()
			pub, err := tpm2.Pub(ek.Public)
			if err != nil {
				t.Fatal(err)
			}
			certKey, ok := cert.PublicKey.(*rsa.PublicKey)
			if !ok || !certKey.Equal(pub) {
				t.Fatal("EK recreated from the standard template is not the certified key")
			}
		})
	}
}

// A TPM that does not answer is not a TPM without an EK certificate.
func TestEKCertificateTPMGone(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	a := &Attester{TPM: sw.OpenT(t)}
	sw.Stop()
	_, err := a.EKCertificate(EKCertIndexRSA)
	if err == nil || errors.Is(err, ErrNoEKCert) {
		t.Fatalf("EK certificate from a stopped swtpm: %v", err)
	}
}

func TestQualifyingData(t *testing.T) {
	base := QualifyingData([]byte("nonce"), []byte("key"))
	for _, tc := range []struct {
		name       string
		nonce, key string
	}{
		{"other nonce", "nonce2", "key"},
		{"other key", "nonce", "key2"},
		{"bytes moved between fields", "noncek", "ey"},
	} {
		if bytes.Equal(QualifyingData([]byte(tc.nonce), []byte(tc.key)), base) {
			t.Errorf("%s: same qualifying data", tc.name)
		}
	}
	if len(base) != 32 {
		t.Fatalf("%d bytes", len(base))
	}
}

func TestAttestNeedsNonceAndKey(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	a := &Attester{TPM: sw.OpenT(t)}
	defer a.Close()
	for _, tc := range []struct {
		name       string
		nonce, key []byte
	}{
		{"no nonce", nil, []byte("k")},
		{"no channel key", []byte("n"), nil},
	} {
		if _, err := a.Attest(tc.nonce, tc.key, nil, nil); err == nil {
			t.Errorf("%s: Attest succeeded", tc.name)
		}
	}
}
