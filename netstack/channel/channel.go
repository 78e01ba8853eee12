// Package channel is the stick's API channel: TLS whose server key is the
// channel key the stick generates at boot and whose digest its TPM quotes
// bind (attest.QualifyingData). A client trusts the connection by the key,
// not by a CA: after attesting a stick, it pins the SHA-256 of the key's
// PKIX DER and talks only to a server holding that key, so a box relaying a
// genuine stick's quote cannot also answer its API.
package channel

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrKeyMismatch is returned when the server's key is not the pinned one.
var ErrKeyMismatch = errors.New("channel: server key is not the attested channel key")

// Digest is the SHA-256 of a public key's PKIX DER: what a quote binds.
func Digest(pub any) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(der), nil
}

// ServerConfig is the TLS configuration of the stick's API: a self-signed
// certificate for key. Its dates are wide because the stick has no
// real-time clock and clients check the key, not the dates.
func ServerConfig(key *ecdsa.PrivateKey) (*tls.Config, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "teastick channel"},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("channel: certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// ClientConfig accepts only a server whose certificate key has the pinned
// digest (from an attestation), whatever its name and dates.
func ClientConfig(pinned [32]byte) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is not what is trusted: the key is, checked below.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrKeyMismatch
			}
			cert, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("channel: server certificate: %w", err)
			}
			d, err := Digest(cert.PublicKey)
			if err != nil || d != pinned {
				return fmt.Errorf("%w: got sha256:%x", ErrKeyMismatch, d)
			}
			return nil
		},
	}
}
