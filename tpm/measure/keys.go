package measure

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/teastick/teastick/tpm/eventlog"
)

// Keys are the public keys a stick makes at boot and measures before it
// serves: the channel key (PKIX DER of the ECDSA key of its API's TLS
// channel) and the result key (the Ed25519 key that signs receipts). A
// quote then names exactly the keys of the boot it attests, and a
// verifier takes them from the log rather than from the stick's word.
type Keys struct {
	// Channel is the PKIX (SubjectPublicKeyInfo) DER of the channel key.
	Channel []byte
	// Result is the Ed25519 result key.
	Result ed25519.PublicKey
}

// ErrKeys means a keys encoding is malformed.
var ErrKeys = errors.New("measure: bad keys record")

// keysVersion is the first byte of the keys encoding.
const keysVersion = 1

// MarshalBinary returns the canonical encoding measured for the keys:
//
//	u8 version (1)
//	u16 len, channel key (PKIX DER)
//	u16 len (32), result key (raw Ed25519 public key, RFC 8032 5.1.5)
//
// big-endian lengths.
func (k Keys) MarshalBinary() ([]byte, error) {
	if len(k.Channel) == 0 || len(k.Channel) > 0xffff {
		return nil, fmt.Errorf("%w: channel key of %d bytes", ErrKeys, len(k.Channel))
	}
	if _, err := x509.ParsePKIXPublicKey(k.Channel); err != nil {
		return nil, fmt.Errorf("%w: channel key: %v", ErrKeys, err)
	}
	if len(k.Result) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: result key of %d bytes", ErrKeys, len(k.Result))
	}
	b := []byte{keysVersion}
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.Channel)))
	b = append(b, k.Channel...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.Result)))
	return append(b, k.Result...), nil
}

// UnmarshalBinary decodes the canonical encoding and rejects anything
// MarshalBinary would not produce.
func (k *Keys) UnmarshalBinary(b []byte) error {
	fail := func(what string) error { return fmt.Errorf("%w: %s", ErrKeys, what) }
	if len(b) < 1 || b[0] != keysVersion {
		return fail("version")
	}
	r := bytes.NewReader(b[1:])
	field := func() ([]byte, bool) {
		var n uint16
		if binary.Read(r, binary.BigEndian, &n) != nil || int(n) > r.Len() {
			return nil, false
		}
		s := make([]byte, n)
		r.Read(s)
		return s, true
	}
	ch, ok := field()
	if !ok || len(ch) == 0 {
		return fail("channel key")
	}
	if _, err := x509.ParsePKIXPublicKey(ch); err != nil {
		return fail("channel key is not PKIX DER")
	}
	res, ok := field()
	if !ok || len(res) != ed25519.PublicKeySize {
		return fail("result key is not 32 bytes")
	}
	if r.Len() != 0 {
		return fail("trailing bytes")
	}
	*k = Keys{Channel: ch, Result: ed25519.PublicKey(res)}
	return nil
}

// MeasureKeys measures the stick's keys into PCR 9 as its first event,
// before any actor and before the separator that precedes serving (the
// verifier requires exactly one keys event, there). PCR 8 stays a function
// of the release alone.
func (m *Measurer) MeasureKeys(k Keys) error {
	enc, err := k.MarshalBinary()
	if err != nil {
		return err
	}
	return m.tagged(PCRBootActors, eventlog.TagKeys, enc)
}
