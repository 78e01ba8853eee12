package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Certification is the AK's statement that the TPM held a key: the output
// of TPM2_Certify over a software key loaded with TPM2_LoadExternal. The
// certified Name (in Attest) is the TPM Name of ResultKeyPublic(Key), so a
// verifier holding the enrolled AK can check it offline (verify.CertifiedKey).
type Certification struct {
	// Key is the PKIX (SubjectPublicKeyInfo) DER of the certified key.
	Key []byte `json:"key"`
	// Attest is the marshalled TPMS_ATTEST (TPM2_Certify's certifyInfo):
	// type TPM_ST_ATTEST_CERTIFY, the caller's qualifying data in
	// extraData, the TPM's clock, and the key's Name.
	Attest []byte `json:"attest"`
	// Signature is the marshalled TPMT_SIGNATURE of the AK over Attest.
	Signature []byte `json:"signature"`
}

// ResultKeyPublic is the public area under which a software ECDSA P-256
// key is loaded into the TPM to be certified (and from which a verifier
// recomputes its Name): an unrestricted ECDSA/SHA-256 signing key,
// userWithAuth, neither fixedTPM nor fixedParent (TPM2_LoadExternal of a
// private part requires both clear), nameAlg SHA-256, and the point padded
// to 32-byte coordinates. pub must be a valid P-256 key; otherwise the
// unique field is left empty and the area names no real key.
func ResultKeyPublic(pub *ecdsa.PublicKey) tpm2.TPMTPublic {
	var x, y []byte
	if pub != nil && pub.Curve == elliptic.P256() {
		if b, err := pub.Bytes(); err == nil && len(b) == 65 {
			x, y = b[1:33], b[33:]
		}
	}
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			UserWithAuth: true,
			SignEncrypt:  true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: x},
			Y: tpm2.TPM2BECCParameter{Buffer: y},
		}),
	}
}

// Certify has the AK certify key: the key (private and public part) is
// loaded into the NULL hierarchy with TPM2_LoadExternal, certified with
// TPM2_Certify (the AK's own scheme, ECDSA/SHA-256; qualifying as
// extraData) and flushed. The private part goes to the TPM only for the
// duration of the command; nothing is stored.
func (a *Attester) Certify(key *ecdsa.PrivateKey, qualifying []byte) (_ *Certification, err error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("attest: certify: key is not ECDSA P-256")
	}
	priv, err := key.Bytes()
	if err != nil {
		return nil, fmt.Errorf("attest: certify: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("attest: certify: %w", err)
	}
	pub := ResultKeyPublic(&key.PublicKey)

	a.mu.Lock()
	defer a.mu.Unlock()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, err
	}
	loaded, err := tpm2.LoadExternal{
		InPrivate: tpm2.New2B(tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgECC,
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: priv}),
		}),
		InPublic:  tpm2.New2B(pub),
		Hierarchy: tpm2.TPMRHNull,
	}.Execute(a.tpm())
	if err != nil {
		return nil, fmt.Errorf("attest: certify: load key: %w", err)
	}
	defer func() {
		// A key left loaded would take one of swtpm's three object slots.
		if _, ferr := (tpm2.FlushContext{FlushHandle: loaded.ObjectHandle}).Execute(a.tpm()); ferr != nil && err == nil {
			err = fmt.Errorf("attest: certify: flush key: %w", ferr)
		}
	}()

	rsp, err := tpm2.Certify{
		ObjectHandle:   tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: tpm2.PasswordAuth(nil)},
		SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: qualifying},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}.Execute(a.tpm())
	if err != nil {
		return nil, fmt.Errorf("attest: certify: %w", err)
	}
	return &Certification{Key: der, Attest: rsp.CertifyInfo.Bytes(), Signature: tpm2.Marshal(rsp.Signature)}, nil
}
