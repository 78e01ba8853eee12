package attest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Certification is the AK's statement that the TPM held the stick's
// result key: the output of TPM2_Certify over the object that stands for
// an Ed25519 key in the TPM (ResultKeyPublic; TPMs know no Ed25519 keys).
// The certified Name (in Attest) is the TPM Name of ResultKeyPublic(Key),
// so a verifier holding the enrolled AK can check it offline
// (verify.CertifiedKey). It binds the key to no boot (the AK certifies
// whatever anyone holding the TPM loads): the keys event the stick
// measures on PCR 9 does (measure.MeasureKeys).
type Certification struct {
	// Key is the PKIX (SubjectPublicKeyInfo) DER of the certified Ed25519
	// key.
	Key []byte `json:"key"`
	// Attest is the marshalled TPMS_ATTEST (TPM2_Certify's certifyInfo):
	// type TPM_ST_ATTEST_CERTIFY, the caller's qualifying data in
	// extraData, the TPM's clock, and the object's Name.
	Attest []byte `json:"attest"`
	// Signature is the marshalled TPMT_SIGNATURE of the AK over Attest.
	Signature []byte `json:"signature"`
}

// ResultKeyDomain begins the data of the object that stands for a result
// key: ResultKeyDomain || the 32-byte Ed25519 public key.
const ResultKeyDomain = "teastick/result-key/ed25519/v1\x00"

// resultKeyData is the sensitive data of pub's object; its obfuscation
// seed is 32 zero bytes, so that a verifier can recompute the unique field
// from the public key alone.
func resultKeyData(pub ed25519.PublicKey) (seed, data []byte) {
	return make([]byte, sha256.Size), append([]byte(ResultKeyDomain), pub...)
}

// ResultKeyPublic is the public area of the object that stands for an
// Ed25519 result key in the TPM, and from which a verifier recomputes its
// Name: a keyed-hash data object (no sign, decrypt or restricted
// attribute: it can do nothing), userWithAuth, neither fixedTPM nor
// fixedParent (TPM2_LoadExternal of a private part requires both clear),
// nameAlg SHA-256, and as unique field SHA-256(seed || data) with
// resultKeyData's seed and data. pub must be 32 bytes; otherwise the
// unique field is left empty and the area names no key.
func ResultKeyPublic(pub ed25519.PublicKey) tpm2.TPMTPublic {
	var unique []byte
	if len(pub) == ed25519.PublicKeySize {
		seed, data := resultKeyData(pub)
		u := sha256.Sum256(append(seed, data...))
		unique = u[:]
	}
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgKeyedHash,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{UserWithAuth: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: unique}),
	}
}

// Certify has the AK certify the Ed25519 key pub: the object that stands
// for it (ResultKeyPublic, with its sensitive data, whose binding to the
// unique field the TPM checks) is loaded into the NULL hierarchy with
// TPM2_LoadExternal, certified with TPM2_Certify (the AK's own scheme,
// ECDSA/SHA-256; qualifying as extraData) and flushed. Nothing is stored,
// and the private key never goes to the TPM.
func (a *Attester) Certify(pub ed25519.PublicKey, qualifying []byte) (_ *Certification, err error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("attest: certify: key of %d bytes is not an Ed25519 public key", len(pub))
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("attest: certify: %w", err)
	}
	public := ResultKeyPublic(pub)
	seed, data := resultKeyData(pub)

	a.mu.Lock()
	defer a.mu.Unlock()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, err
	}
	loaded, err := tpm2.LoadExternal{
		InPrivate: tpm2.New2B(tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgKeyedHash,
			SeedValue:     tpm2.TPM2BDigest{Buffer: seed},
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BSensitiveData{Buffer: data}),
		}),
		InPublic:  tpm2.New2B(public),
		Hierarchy: tpm2.TPMRHNull,
	}.Execute(a.tpm())
	if err != nil {
		return nil, fmt.Errorf("attest: certify: load key: %w", err)
	}
	defer func() {
		// An object left loaded would take one of swtpm's three slots.
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
