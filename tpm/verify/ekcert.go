package verify

import (
	"bytes"
	"crypto/x509"
	x509pkix "crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
)

// The EK certificate profile: TCG EK Credential Profile for TPM Family
// 2.0, Level 0, Version 2.6, §3.2 ("X.509 EK Certificate" field by
// field). Only the rules that say what the certificate certifies are
// enforced; encodings a relying party does not act on (serial number
// width, policy OIDs, AKI criticality) are not.
var (
	// ErrEKProfile means the EK certificate chains to the CA but is not
	// an EK certificate by the TCG EK Credential Profile; the errors
	// below wrap it and name the rule.
	ErrEKProfile = errors.New("verify: EK certificate violates the TCG EK Credential Profile")
	// ErrEKCA: §3.2 Basic Constraints, the extension MUST be present
	// with cA FALSE (an EK certificate is never a CA).
	ErrEKCA = fmt.Errorf("%w: basic constraints missing or cA true (§3.2 Basic Constraints)", ErrEKProfile)
	// ErrEKKeyUsage: §3.2 Key Usage, an RSA EK is a decryption key:
	// keyEncipherment MUST be set; keyCertSign/cRLSign are a CA's.
	ErrEKKeyUsage = fmt.Errorf("%w: key usage is not keyEncipherment for an RSA EK (§3.2 Key Usage)", ErrEKProfile)
	// ErrEKExtKeyUsage: §3.2 Extended Key Usage, when present it
	// carries tcg-kp-EKCertificate (2.23.133.8.1).
	ErrEKExtKeyUsage = fmt.Errorf("%w: extended key usage lacks tcg-kp-EKCertificate 2.23.133.8.1 (§3.2 Extended Key Usage)", ErrEKProfile)
	// ErrEKAltName: §3.2 Subject Alternative Name, MUST be present, a
	// directoryName with tcg-at-tpmManufacturer, tpmModel and tpmVersion
	// (2.23.133.2.1/2/3), critical when the subject is empty.
	ErrEKAltName = fmt.Errorf("%w: subject alternative name lacks the TPM manufacturer/model/version directoryName (§3.2 Subject Alternative Name)", ErrEKProfile)
	// ErrEKCritical: RFC 5280 §4.2, a critical extension the verifier
	// does not process refuses the certificate.
	ErrEKCritical = fmt.Errorf("%w: unknown critical extension (RFC 5280 §4.2)", ErrEKProfile)
)

var (
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidEKCertificate   = asn1.ObjectIdentifier{2, 23, 133, 8, 1} // tcg-kp-EKCertificate
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1} // tcg-at-tpmManufacturer
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2} // tcg-at-tpmModel
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3} // tcg-at-tpmVersion
)

// checkEKProfile checks cert, an RSA EK certificate, against the profile.
// It removes the subject alternative name, which it processes, from
// cert.UnhandledCriticalExtensions, so that x509 chain verification
// accepts it; any other unhandled critical extension is refused.
func checkEKProfile(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || cert.IsCA {
		return ErrEKCA
	}
	if cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 || cert.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return fmt.Errorf("%w: %#x", ErrEKKeyUsage, cert.KeyUsage)
	}
	hasEKU := len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0
	if hasEKU && !slices.ContainsFunc(cert.UnknownExtKeyUsage, oidEKCertificate.Equal) {
		return ErrEKExtKeyUsage
	}
	var san *x509pkix.Extension
	for i := range cert.Extensions {
		if cert.Extensions[i].Id.Equal(oidSubjectAltName) {
			san = &cert.Extensions[i]
		}
	}
	if san == nil {
		return fmt.Errorf("%w: missing", ErrEKAltName)
	}
	// The DER of an empty Name (RDNSequence) is an empty SEQUENCE.
	if bytes.Equal(cert.RawSubject, []byte{0x30, 0}) && !san.Critical {
		return fmt.Errorf("%w: not critical with an empty subject", ErrEKAltName)
	}
	if err := checkTPMAltName(san.Value); err != nil {
		return fmt.Errorf("%w: %v", ErrEKAltName, err)
	}
	cert.UnhandledCriticalExtensions = slices.DeleteFunc(cert.UnhandledCriticalExtensions, oidSubjectAltName.Equal)
	if len(cert.UnhandledCriticalExtensions) > 0 {
		return fmt.Errorf("%w: %v", ErrEKCritical, cert.UnhandledCriticalExtensions)
	}
	return nil
}

// checkTPMAltName checks a subjectAltName value (GeneralNames, RFC 5280
// §4.2.1.6) holds a directoryName ([4], explicit: Name is a CHOICE) with a
// non-empty TPM manufacturer, model and version.
func checkTPMAltName(der []byte) error {
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &names); err != nil {
		return err
	} else if len(rest) > 0 {
		return errors.New("trailing data")
	}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 4 || !n.IsCompound {
			continue
		}
		var rdns x509pkix.RDNSequence
		if rest, err := asn1.Unmarshal(n.Bytes, &rdns); err != nil || len(rest) > 0 {
			return fmt.Errorf("directoryName does not parse: %v", err)
		}
		found := map[string]bool{}
		for _, rdn := range rdns {
			for _, a := range rdn {
				if s, ok := a.Value.(string); ok && s != "" {
					found[a.Type.String()] = true
				}
			}
		}
		if found[oidTPMManufacturer.String()] && found[oidTPMModel.String()] && found[oidTPMVersion.String()] {
			return nil
		}
	}
	return errors.New("no directoryName with tcg-at-tpmManufacturer, tpmModel and tpmVersion")
}
