// Package receipt makes and checks receipts: the stick's signed statement
// that one invocation happened. A receipt names the actor (name and CID),
// the operation, the SHA-256 of the input and of the output, the manifest
// version in force and a counter, and carries an Ed25519 signature by the
// stick's result key over Message, a domain-separated encoding of those
// fields.
//
// The result key is a software Ed25519 key the stick generates at boot
// (signing each receipt in the TPM would make the TPM the bottleneck); it
// never leaves the stick's memory. Before it serves anything the stick
// measures the result key with its channel key into PCR 9, as the first
// event there (measure.MeasureKeys): a quote of that boot names exactly
// one result key, which tpm/verify.Verify returns once the quote, the log
// and the release's reference measurements check out.
//
// Checking a receipt offline needs a File: the receipt with its Evidence
// (an attestation of the boot that signed it, the signed manifests the
// stick accepted, its configuration record and the AK's certification of
// the result key), and a Trust: the stick's enrolled AK and the
// governance key (and, optionally, the release the stick must have
// booted). VerifyFile checks the evidence against the reference the
// manifests give, then the receipt's signature with the measured result
// key, then that the receipt's actor version was measured in that boot.
// CheckInput then checks the receipt is about given input and output
// bytes. A key the AK certified but the boot did not measure (the AK has
// an empty authorization: anyone with the TPM can have it certify any
// key) is not a result key.
//
// Counter increases by one per receipt from 1 within one boot (one result
// key): gaps show receipts withheld, a repeated value a forgery or a
// result key reused across boots.
package receipt

import (
	"bytes"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
)

// Domain is the prefix of every receipt message. Version 1 receipts were
// signed with ECDSA P-256; version 2 receipts by an Ed25519 key that was
// only certified by the AK, not measured (they do not verify: RATIONALE).
const Domain = "teastick/receipt/v3\x00"

// QualifyingLabel is hashed into the qualifying data of the result key's
// certification.
const QualifyingLabel = "teastick/result-key/v1"

// Errors of the receipt checks.
var (
	ErrMalformed       = errors.New("receipt: malformed")
	ErrSignature       = errors.New("receipt: signature does not verify with the result key")
	ErrInputMismatch   = errors.New("receipt: input does not match input_sha256")
	ErrOutputMismatch  = errors.New("receipt: output does not match output_sha256")
	ErrNoResultKey     = errors.New("receipt: no result key")
	ErrResultKeyType   = errors.New("receipt: result key is not an Ed25519 public key")
	ErrStatementDomain = errors.New("receipt: a statement may not begin with the receipt domain")
	errCounterOverflow = errors.New("receipt: counter exhausted")
)

// Receipt is one signed invocation result.
type Receipt struct {
	Actor           string `json:"actor"`
	CID             string `json:"cid"`
	Operation       string `json:"operation"`
	InputSHA256     string `json:"input_sha256"`  // 64 lowercase hex digits
	OutputSHA256    string `json:"output_sha256"` // 64 lowercase hex digits
	ManifestVersion uint64 `json:"manifest_version"`
	Counter         uint64 `json:"counter"`
	// Signature is the 64-byte Ed25519 signature over Message().
	Signature []byte `json:"signature"`
}

// Message is what the signature covers: Domain, then Actor, CID and
// Operation each as a uint32 big-endian length and the bytes, then the
// input and output SHA-256 as 32 raw bytes each, then ManifestVersion and
// Counter as uint64 big endian. It fails if a hash is not 64 lowercase hex
// digits (each digest has a single textual form).
func (r *Receipt) Message() ([]byte, error) {
	in, err := digest("input_sha256", r.InputSHA256)
	if err != nil {
		return nil, err
	}
	out, err := digest("output_sha256", r.OutputSHA256)
	if err != nil {
		return nil, err
	}
	n := len(Domain) + 3*4 + len(r.Actor) + len(r.CID) + len(r.Operation) + 2*sha256.Size + 2*8
	m := make([]byte, 0, n)
	m = append(m, Domain...)
	for _, s := range []struct{ name, v string }{{"actor", r.Actor}, {"cid", r.CID}, {"operation", r.Operation}} {
		if uint64(len(s.v)) > math.MaxUint32 {
			return nil, fmt.Errorf("%w: %s of %d bytes", ErrMalformed, s.name, len(s.v))
		}
		m = binary.BigEndian.AppendUint32(m, uint32(len(s.v)))
		m = append(m, s.v...)
	}
	m = append(m, in...)
	m = append(m, out...)
	m = binary.BigEndian.AppendUint64(m, r.ManifestVersion)
	m = binary.BigEndian.AppendUint64(m, r.Counter)
	return m, nil
}

func digest(name, h string) ([]byte, error) {
	if len(h) != 2*sha256.Size {
		return nil, fmt.Errorf("%w: %s has %d characters, want %d hex digits", ErrMalformed, name, len(h), 2*sha256.Size)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, fmt.Errorf("%w: %s has %q at %d, want lowercase hex", ErrMalformed, name, c, i)
		}
	}
	return hex.DecodeString(h)
}

// Signer signs receipts with the result key. It is safe for concurrent use.
type Signer struct {
	key     ed25519.PrivateKey
	pub     ed25519.PublicKey
	der     []byte
	counter atomic.Uint64
}

// NewSigner generates a result key from rand (nil: crypto/rand.Reader).
// Signing needs no randomness: Ed25519 signatures are deterministic.
func NewSigner(rand io.Reader) (*Signer, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	pub, key, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("receipt: result key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("receipt: result key: %w", err)
	}
	return &Signer{key: key, pub: pub, der: der}, nil
}

// Public returns the result key's public part, to be certified
// (attest.Attester.Certify).
func (s *Signer) Public() ed25519.PublicKey { return bytes.Clone(s.pub) }

// PublicDER returns the PKIX DER of the result key's public part.
func (s *Signer) PublicDER() []byte { return bytes.Clone(s.der) }

// Count returns how many receipts this signer has made (the counter of
// the last one).
func (s *Signer) Count() uint64 { return s.counter.Load() }

// SignStatement signs msg, a statement of another kind than a receipt
// (runtime.ActorMessage for an actor's crypto.sign), with the result key.
// msg must begin with a domain string of its own; one that begins with
// Domain is refused, so that no statement can pass for a receipt.
func (s *Signer) SignStatement(msg []byte) ([]byte, error) {
	if bytes.HasPrefix(msg, []byte(Domain)) {
		return nil, ErrStatementDomain
	}
	return ed25519.Sign(s.key, msg), nil
}

// Sign makes the receipt of one invocation: hashes of input and output,
// the next counter value (1 for the first receipt) and the signature.
func (s *Signer) Sign(actor, cid, op string, input, output []byte, manifestVersion uint64) (*Receipt, error) {
	in, out := sha256.Sum256(input), sha256.Sum256(output)
	r := &Receipt{Actor: actor, CID: cid, Operation: op,
		InputSHA256: hex.EncodeToString(in[:]), OutputSHA256: hex.EncodeToString(out[:]),
		ManifestVersion: manifestVersion}
	for {
		c := s.counter.Load()
		if c == math.MaxUint64 { // never wrap and reuse a value
			return nil, errCounterOverflow
		}
		if s.counter.CompareAndSwap(c, c+1) {
			r.Counter = c + 1
			break
		}
	}
	m, err := r.Message()
	if err != nil {
		return nil, err
	}
	r.Signature = ed25519.Sign(s.key, m)
	return r, nil
}

// Verify checks r's signature with the result key.
func Verify(r *Receipt, resultKey ed25519.PublicKey) error {
	if resultKey == nil {
		return ErrNoResultKey
	}
	if len(resultKey) != ed25519.PublicKeySize {
		return ErrResultKeyType
	}
	if r == nil {
		return fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	m, err := r.Message()
	if err != nil {
		return err
	}
	if len(r.Signature) != ed25519.SignatureSize || !ed25519.Verify(resultKey, m, r.Signature) {
		return ErrSignature
	}
	return nil
}

// Qualifying is the qualifying data of the result key's certification:
// SHA-256(QualifyingLabel). It is fixed: the certification is bound to the
// stick by the AK and to a boot by the TPM clock it carries (see
// verify.CertifiedKey and verify.SameBoot), not to a verifier's nonce. The
// certification alone binds the key to no boot: VerifyFile.
func Qualifying() []byte {
	q := sha256.Sum256([]byte(QualifyingLabel))
	return q[:]
}

// CheckInput checks that r is about input and output: their SHA-256 are
// the receipt's input_sha256 and output_sha256. It does not check the
// signature (Verify, VerifyFile).
func CheckInput(r *Receipt, input, output []byte) error {
	if r == nil {
		return fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	in, err := digest("input_sha256", r.InputSHA256)
	if err != nil {
		return err
	}
	out, err := digest("output_sha256", r.OutputSHA256)
	if err != nil {
		return err
	}
	if h := sha256.Sum256(input); !bytes.Equal(in, h[:]) {
		return fmt.Errorf("%w: input hashes to %x", ErrInputMismatch, h)
	}
	if h := sha256.Sum256(output); !bytes.Equal(out, h[:]) {
		return fmt.Errorf("%w: output hashes to %x", ErrOutputMismatch, h)
	}
	return nil
}
