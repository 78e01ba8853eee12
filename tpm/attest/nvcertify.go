package attest

import (
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// NVCertification is the AK's TPM2_NV_Certify of an NV index's contents
// (TPM 2.0 Part 3, 31.16): the stick's rollback counter in an attestation.
type NVCertification struct {
	// Attest is the marshalled TPMS_ATTEST: type TPM_ST_ATTEST_NV, the
	// caller's qualifying data in extraData, the TPM's clock, and
	// TPMS_NV_CERTIFY_INFO (the index's Name, the offset, the contents).
	Attest []byte `json:"attest"`
	// Signature is the marshalled TPMT_SIGNATURE of the AK over Attest.
	Signature []byte `json:"signature"`
}

// CounterQualifying is the qualifying data of the stick's certification
// of its rollback counter: QualifyingData with a fixed label as the nonce,
// so it names the boot's channel key. The stick certifies the counter once
// each time it moves, not per attestation; the verifier checks it was
// made in the quote's boot (verify.SameBoot, and this channel key).
func CounterQualifying(channelKeyDER []byte) []byte {
	return QualifyingData([]byte("teastick/rollback-counter/v1"), channelKeyDER)
}

// CertifyNV has the AK certify size bytes at offset 0 of the NV index
// (whose Name is name), read with the index's own empty authValue
// (TPMA_NV_AUTHREAD), qualifying as extraData.
func (a *Attester) CertifyNV(index tpm2.TPMHandle, name tpm2.TPM2BName, size uint16, qualifying []byte) (*NVCertification, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ak, err := a.loadedAK()
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.NVCertify{
		SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		AuthHandle:     tpm2.AuthHandle{Handle: index, Name: name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:        tpm2.NamedHandle{Handle: index, Name: name},
		QualifyingData: tpm2.TPM2BData{Buffer: qualifying},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		Size:           size,
	}.Execute(a.tpm())
	if err != nil {
		return nil, fmt.Errorf("attest: NV_Certify %#x: %w", uint32(index), err)
	}
	return &NVCertification{Attest: rsp.CertifyInfo.Bytes(), Signature: tpm2.Marshal(rsp.Signature)}, nil
}
