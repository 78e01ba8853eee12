package verify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/nvcounter"
)

// Errors of CertifiedCounter, one per check; the returned error wraps
// exactly one of them, with details.
var (
	ErrNoCounter         = errors.New("verify: rollback counter: missing")
	ErrCounterAK         = errors.New("verify: rollback counter: enrolled AK unusable")
	ErrCounterSignature  = errors.New("verify: rollback counter: AK signature over the attestation does not verify")
	ErrCounterAttest     = errors.New("verify: rollback counter: attestation is not a TPM-generated TPM2_NV_Certify (TPM_ST_ATTEST_NV)")
	ErrCounterQualifying = errors.New("verify: rollback counter: qualifying data (extraData) differs from the expected")
	ErrCounterIndex      = errors.New("verify: rollback counter: certified index is not the stick's counter")
)

// CertifiedCounter checks a certification of the stick's rollback counter
// made by attest.Attester.CertifyNV and returns the counter's value: the
// enrolled AK's signature over c.Attest; a TPM-generated TPM_ST_ATTEST_NV
// attestation (TPM 2.0 Part 2, 10.12 "Attestation Structures", TPMS_NV_CERTIFY_INFO); qualifying
// as its extraData; the Name of the certified index equal to
// nvcounter.Name() (which commits to the index handle and every
// attribute: a counter, written, defined as the stick defines it); offset
// 0 and 8 bytes of contents, the big-endian counter.
func CertifiedCounter(akPublic []byte, c *attest.NVCertification, qualifying []byte) (uint64, *tpm2.TPMSAttest, error) {
	if c == nil || len(c.Attest) == 0 || len(c.Signature) == 0 {
		return 0, nil, ErrNoCounter
	}
	ak, err := parseAK(akPublic)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrCounterAK, err)
	}
	if err := checkSignature(ak, c.Attest, c.Signature); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrCounterSignature, err)
	}
	at, err := tpm2.Unmarshal[tpm2.TPMSAttest](c.Attest)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrCounterAttest, err)
	}
	if at.Magic != tpm2.TPMGeneratedValue || at.Type != tpm2.TPMSTAttestNV {
		return 0, nil, fmt.Errorf("%w: magic %#x type %#x", ErrCounterAttest, uint32(at.Magic), uint16(at.Type))
	}
	info, err := at.Attested.NV()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrCounterAttest, err)
	}
	if !bytes.Equal(at.ExtraData.Buffer, qualifying) {
		return 0, nil, fmt.Errorf("%w: got %x, want %x", ErrCounterQualifying, at.ExtraData.Buffer, qualifying)
	}
	if !bytes.Equal(info.IndexName.Buffer, nvcounter.Name()) || info.Offset != 0 || len(info.NVContents.Buffer) != 8 {
		return 0, nil, fmt.Errorf("%w: index %x offset %d, %d bytes", ErrCounterIndex, info.IndexName.Buffer, info.Offset, len(info.NVContents.Buffer))
	}
	return binary.BigEndian.Uint64(info.NVContents.Buffer), at, nil
}

// Check names of CheckRollback.
const (
	CheckCounter  = "rollback counter certified by the AK"
	CheckRollback = "manifest not older than the rollback counter and the release"
)

// CheckRollback adds two checks to v: the stick's rollback counter is
// certified by the enrolled AK in the boot of quote (CertifiedCounter with
// attest.CounterQualifying of the channel key the verifier sees, and
// SameBoot with the quote, a TPMS_ATTEST), and the version of the manifest
// the stick serves (served) is at least that counter and at least min,
// the version of the release the verifier names (0: none named). It
// returns the counter.
//
// The stick certifies the counter once each time it moves (raised by a
// manifest, or read at boot), not per nonce: the value is the one the
// stick enforced. A raise by someone else holding the TPM since is not
// shown; it can only refuse manifests. A served version below the
// counter means the stick did not enforce it.
func (v *Verdict) CheckRollback(akPublic []byte, c *attest.NVCertification, channelKey, quote []byte, served, min uint64) uint64 {
	counter, at, err := CertifiedCounter(akPublic, c, attest.CounterQualifying(channelKey))
	if err == nil {
		if q, qerr := tpm2.Unmarshal[tpm2.TPMSAttest](quote); qerr != nil || !SameBoot(q, at) {
			err = fmt.Errorf("%w: certified in another boot than the quote's", ErrCounterQualifying)
		}
	}
	if err != nil {
		v.add(CheckCounter, false, -1, -1, "%v", err)
		v.add(CheckRollback, false, -1, -1, "no certified counter; served manifest version %d", served)
		return 0
	}
	v.add(CheckCounter, true, -1, -1, "counter %d", counter)
	v.RollbackCounter = counter
	detail := fmt.Sprintf("served manifest version %d, rollback counter %d", served, counter)
	if min > 0 {
		detail += fmt.Sprintf(", release version %d", min)
	}
	v.add(CheckRollback, served >= counter && served >= min, -1, -1, "%s", detail)
	return counter
}
