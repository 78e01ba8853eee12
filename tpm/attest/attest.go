// Package attest is the stick's side of remote attestation: the attestation
// key (AK), the endorsement key (EK) and its certificate, credential
// activation at enrolment, and quotes bound to a verifier's nonce and the
// stick's channel key. Package verify is the verifier's side.
package attest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

// NV indices of EK certificates (TCG EK Credential Profile 2.0, 2.2.1.4
// "Low Range"): RSA 2048 and ECC NIST P-256. swtpm_setup writes the RSA one;
// its ECC EK is P-384 at a high-range index.
const (
	EKCertIndexRSA = 0x01c00002
	EKCertIndexECC = 0x01c0000a
)

// AKTemplate is the attestation key: a restricted ECC P-256 ECDSA/SHA-256
// signing key created as a primary under the endorsement hierarchy. Primary
// keys derive from the hierarchy seed and the template, so the same
// template gives the same key on every boot and nothing is stored in NV.
var AKTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// EKTemplate is the standard RSA 2048 EK template (EK Credential Profile
// 2.0, template L-1), the key the certificate at EKCertIndexRSA certifies.
var EKTemplate = tpm2.RSAEKTemplate

// ErrNoEKCert means the TPM holds no EK certificate.
var ErrNoEKCert = errors.New("attest: no EK certificate in NV")

// QualifyingData is what a quote's qualifying data (extraData) carries:
// SHA-256(nonce || SHA-256(channelKeyDER)), channelKeyDER being the PKIX
// (SubjectPublicKeyInfo) DER of the key protecting the stick's API. A
// relayed quote names the genuine stick's channel key, not the relay's.
func QualifyingData(nonce, channelKeyDER []byte) []byte {
	k := sha256.Sum256(channelKeyDER)
	h := sha256.New()
	h.Write(nonce)
	h.Write(k[:])
	return h.Sum(nil)
}

// Attester talks to the stick's TPM. It keeps the AK loaded between
// attestations (one of swtpm's three transient object slots); Close
// unloads it.
type Attester struct {
	TPM transport.TPM

	mu sync.Mutex
	ak *Key
}

// loadedAK returns the AK, loading it on first use.
func (a *Attester) loadedAK() (*Key, error) {
	if a.ak == nil {
		ak, err := a.primary(AKTemplate, "AK")
		if err != nil {
			return nil, err
		}
		a.ak = ak
	}
	return a.ak, nil
}

// Close unloads the AK if it is loaded.
func (a *Attester) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ak == nil {
		return nil
	}
	err := a.ak.Flush()
	a.ak = nil
	return err
}

// tpm is the TPM with commands the TPM asks to retry resent.
func (a *Attester) tpm() transport.TPM { return measure.Retrying(a.TPM) }

// Key is a loaded primary key; Flush unloads it (swtpm holds at most three
// transient objects).
type Key struct {
	Handle tpm2.TPMHandle
	Name   tpm2.TPM2BName
	Public tpm2.TPMTPublic
	tpm    transport.TPM
}

// Flush unloads the key.
func (k *Key) Flush() error {
	if _, err := (tpm2.FlushContext{FlushHandle: k.Handle}).Execute(k.tpm); err != nil {
		return fmt.Errorf("attest: flush %#x: %w", k.Handle, err)
	}
	return nil
}

func (a *Attester) primary(tmpl tpm2.TPMTPublic, what string) (*Key, error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tmpl)}.Execute(a.tpm())
	if err != nil {
		return nil, fmt.Errorf("attest: create %s: %w", what, err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(a.tpm())
		return nil, fmt.Errorf("attest: %s public: %w", what, err)
	}
	return &Key{Handle: rsp.ObjectHandle, Name: rsp.Name, Public: *pub, tpm: a.tpm()}, nil
}

// AK creates (loads) the attestation key. The caller flushes it.
func (a *Attester) AK() (*Key, error) { return a.primary(AKTemplate, "AK") }

// EK creates (loads) the RSA EK. The caller flushes it.
func (a *Attester) EK() (*Key, error) { return a.primary(EKTemplate, "EK") }

// AKPublic returns the AK's public area (TPMT_PUBLIC bytes).
func (a *Attester) AKPublic() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, err
	}
	return tpm2.Marshal(ak.Public), nil
}

// EKCertificate reads the DER EK certificate at index from NV.
func (a *Attester) EKCertificate(index tpm2.TPMHandle) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(a.tpm())
	if errors.Is(err, tpm2.TPMRCHandle) {
		// The index is not defined (TPM 2.0 Part 3, 31.6 NV_ReadPublic).
		return nil, fmt.Errorf("%w: index %#x: %w", ErrNoEKCert, index, err)
	}
	if err != nil {
		return nil, fmt.Errorf("attest: read EK certificate index %#x: %w", index, err)
	}
	nv, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("attest: EK certificate index: %w", err)
	}
	var cert []byte
	const chunk = 512 // below every TPM's TPM_PT_NV_BUFFER_MAX
	for off := 0; off < int(nv.DataSize); off += chunk {
		n := min(chunk, int(nv.DataSize)-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: index, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: pub.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(a.tpm())
		if err != nil {
			return nil, fmt.Errorf("attest: read EK certificate at %d: %w", off, err)
		}
		cert = append(cert, rsp.Data.Buffer...)
	}
	return cert, nil
}

// Enrolment is what the stick sends to be enrolled.
type Enrolment struct {
	EKCert   []byte // DER, from NV
	EKPublic []byte // TPMT_PUBLIC of the EK recreated from EKTemplate
	AKPublic []byte // TPMT_PUBLIC of the AK
}

// Enrol gathers the enrolment request.
func (a *Attester) Enrol() (*Enrolment, error) {
	cert, err := a.EKCertificate(EKCertIndexRSA)
	if err != nil {
		return nil, err
	}
	// The EK occupies a transient slot (swtpm has three) until flushed:
	// under the lock, like every other object the Attester loads.
	a.mu.Lock()
	ek, err := a.EK()
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	ekPub := tpm2.Marshal(ek.Public)
	err = ek.Flush()
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	akPub, err := a.AKPublic()
	if err != nil {
		return nil, err
	}
	return &Enrolment{EKCert: cert, EKPublic: ekPub, AKPublic: akPub}, nil
}

// ActivateCredential recovers the secret a verifier encrypted to the EK for
// the AK's name (TPM2_ActivateCredential). The EK's policy (EK Credential
// Profile, PolicySecret(TPM_RH_ENDORSEMENT)) is satisfied in a policy session.
func (a *Attester) ActivateCredential(credentialBlob, encryptedSecret []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ek, err := a.EK()
	if err != nil {
		return nil, err
	}
	defer ek.Flush()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, err
	}
	policy := func(t transport.TPM, h tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicySecret{AuthHandle: tpm2.TPMRHEndorsement, PolicySession: h, NonceTPM: nonceTPM}.Execute(t)
		return err
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ek.Handle, Name: ek.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, policy)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: credentialBlob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encryptedSecret},
	}.Execute(a.tpm())
	if err != nil {
		return nil, fmt.Errorf("attest: ActivateCredential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// Evidence is the stick's answer to a nonce.
type Evidence struct {
	AKPublic   []byte            // TPMT_PUBLIC of the AK
	Quote      []byte            // TPMS_ATTEST, the signed message
	Signature  []byte            // TPMT_SIGNATURE
	PCRs       map[uint32][]byte // SHA-256 PCR values read after the quote
	EventLog   []byte            // the measured boot log
	ChannelKey []byte            // PKIX DER of the channel key
}

// Quote quotes the SHA-256 PCRs with the given qualifying data.
func (a *Attester) Quote(qualifying []byte, pcrs []uint32) (quoted, sig []byte, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, nil, err
	}
	return a.quoteWith(ak, qualifying, pcrs)
}

func (a *Attester) quoteWith(ak *Key, qualifying []byte, pcrs []uint32) ([]byte, []byte, error) {
	idx := make([]uint, len(pcrs))
	for i, p := range pcrs {
		idx[i] = uint(p)
	}
	rsp, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: qualifying},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(idx...)}}},
	}.Execute(a.tpm())
	if err != nil {
		return nil, nil, fmt.Errorf("attest: quote: %w", err)
	}
	return rsp.Quoted.Bytes(), tpm2.Marshal(rsp.Signature), nil
}

// Attest answers a verifier's nonce: a quote over PCRs 0..measure.MaxPCR
// bound to nonce and channel key, the PCR values and the event log. pcrs
// are the values to send (Measurer.PCRs, saving two TPM2_PCR_Read); nil
// reads them from the TPM after the quote.
func (a *Attester) Attest(nonce, channelKeyDER, eventLog []byte, pcrs eventlog.PCRs) (*Evidence, error) {
	if len(nonce) == 0 || len(channelKeyDER) == 0 {
		return nil, errors.New("attest: nonce and channel key are required")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, err
	}
	plan := measure.PlanPCRs()
	quoted, sig, err := a.quoteWith(ak, QualifyingData(nonce, channelKeyDER), plan)
	if err != nil {
		return nil, err
	}
	vals := pcrs
	if vals == nil {
		if vals, err = measure.ReadPCRs(a.tpm(), plan); err != nil {
			return nil, err
		}
	}
	ev := &Evidence{AKPublic: tpm2.Marshal(ak.Public), Quote: quoted, Signature: sig,
		PCRs: map[uint32][]byte{}, EventLog: eventLog, ChannelKey: channelKeyDER}
	for _, p := range plan {
		v, ok := vals[p]
		if !ok {
			return nil, fmt.Errorf("attest: no value for PCR %d", p)
		}
		ev.PCRs[p] = v[:]
	}
	return ev, nil
}
