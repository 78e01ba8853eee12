package verify

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	x509pkix "crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/teastick/teastick/tpm/attest"
)

// caSigner is the swtpm local CA's issuing certificate and key in caDir
// (the files swtpm_localca keeps), so the test can mint EK certificates
// that chain to the bundle the verifier trusts.
func caSigner(t *testing.T, caDir string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(caDir, name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM block", name)
		}
		return blk.Bytes
	}
	issuer, err := x509.ParseCertificate(read("issuercert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS1PrivateKey(read("signkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return issuer, key
}

// tpmAltName is a subjectAltName extension with a directoryName holding
// the given attributes (the profile's §3.2 TPM manufacturer/model/version).
func tpmAltName(t *testing.T, critical bool, attrs ...x509pkix.AttributeTypeAndValue) x509pkix.Extension {
	t.Helper()
	name, err := asn1.Marshal(x509pkix.RDNSequence{attrs})
	if err != nil {
		t.Fatal(err)
	}
	v, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}})
	if err != nil {
		t.Fatal(err)
	}
	return x509pkix.Extension{Id: oidSubjectAltName, Critical: critical, Value: v}
}

// TestEnrolEKProfile mints EK certificates for the stick's own EK, signed
// by the CA in the verifier's bundle, each breaking one rule of the TCG EK
// Credential Profile: all chain and certify the right key, and only the
// one that keeps the profile (as swtpm's does) is accepted.
func TestEnrolEKProfile(t *testing.T) {
	s := bootStick(t, t.TempDir(), []byte("image"))
	req, err := s.att.Enrol()
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := x509.ParseCertificate(req.EKCert)
	if err != nil {
		t.Fatal(err)
	}
	issuer, caKey := caSigner(t, s.sw.CADir)
	manufacturer := x509pkix.AttributeTypeAndValue{Type: oidTPMManufacturer, Value: "id:00001014"}
	model := x509pkix.AttributeTypeAndValue{Type: oidTPMModel, Value: "swtpm"}
	version := x509pkix.AttributeTypeAndValue{Type: oidTPMVersion, Value: "id:20191023"}
	profile := func() *x509.Certificate {
		return &x509.Certificate{
			SerialNumber:          big.NewInt(1000),
			Subject:               x509pkix.Name{CommonName: "unknown"},
			NotBefore:             genuine.NotBefore,
			NotAfter:              genuine.NotAfter,
			KeyUsage:              x509.KeyUsageKeyEncipherment,
			UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidEKCertificate},
			BasicConstraintsValid: true,
			ExtraExtensions:       []x509pkix.Extension{tpmAltName(t, true, manufacturer, model, version)},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(c *x509.Certificate)
		want   error // nil: accepted
	}{
		{"keeps the profile", func(c *x509.Certificate) {}, nil},
		{"no EKU: allowed", func(c *x509.Certificate) { c.UnknownExtKeyUsage = nil }, nil},
		{"empty subject, critical SAN", func(c *x509.Certificate) { c.Subject = x509pkix.Name{} }, nil},
		{"EKU without tcg-kp-EKCertificate", func(c *x509.Certificate) {
			c.UnknownExtKeyUsage = nil
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}, ErrEKExtKeyUsage},
		{"CA:true", func(c *x509.Certificate) { c.IsCA = true }, ErrEKCA},
		{"no basic constraints", func(c *x509.Certificate) { c.BasicConstraintsValid = false }, ErrEKCA},
		{"signing key usage", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }, ErrEKKeyUsage},
		{"certificate-signing key usage", func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }, ErrEKKeyUsage},
		{"no SAN", func(c *x509.Certificate) { c.ExtraExtensions = nil }, ErrEKAltName},
		{"DNS SAN, no TPM directoryName", func(c *x509.Certificate) {
			c.ExtraExtensions = nil
			c.DNSNames = []string{"ek.example"}
		}, ErrEKAltName},
		{"SAN without TPM model and version", func(c *x509.Certificate) {
			c.ExtraExtensions = []x509pkix.Extension{tpmAltName(t, true, manufacturer)}
		}, ErrEKAltName},
		{"empty subject, SAN not critical", func(c *x509.Certificate) {
			c.Subject = x509pkix.Name{}
			c.ExtraExtensions = []x509pkix.Extension{tpmAltName(t, false, manufacturer, model, version)}
		}, ErrEKAltName},
		{"unknown critical extension", func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, x509pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{5, 0}})
		}, ErrEKCritical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := profile()
			tc.change(c)
			der, err := x509.CreateCertificate(rand.Reader, c, issuer, genuine.PublicKey, caKey)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Enrol(&attest.Enrolment{EKCert: der, EKPublic: req.EKPublic, AKPublic: req.AKPublic}, s.roots)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Enrol = %v, want accepted", err)
			case tc.want != nil && (!errors.Is(err, tc.want) || !errors.Is(err, ErrEKProfile) || !errors.Is(err, ErrEnrol)):
				t.Fatalf("Enrol = %v, want %v", err, tc.want)
			}
		})
	}
}
