package verify

import (
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
)

// FuzzVerify feeds arbitrary evidence (quote, signature, event log, PCR
// value) to Verify: it must return a failing verdict, never panic.
func FuzzVerify(f *testing.F) {
	ak := tpm2.Marshal(attest.AKTemplate)
	f.Add([]byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x18}, []byte{0, 0x18, 0, 0x0b}, eventlog.Header(), make([]byte, 32))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, quote, sig, log, pcr []byte) {
		ev := &attest.Evidence{AKPublic: ak, Quote: quote, Signature: sig, EventLog: log,
			PCRs: map[uint32][]byte{0: pcr}, ChannelKey: []byte("k")}
		v := Verify(ev, Expect{AKPublic: ak, Nonce: []byte("n"), ChannelKey: []byte("k"), Reference: &Reference{}})
		if v.OK() {
			t.Fatalf("fuzzed evidence verified:\n%s", v)
		}
	})
}

// FuzzTPMAltName feeds arbitrary subjectAltName values to the EK profile's
// directoryName parser: it must return, never panic. The seed is the
// SAN swtpm_localca writes.
func FuzzTPMAltName(f *testing.F) {
	f.Add([]byte("0F\xa4D0B1\x160\x14\x06\x05g\x81\x05\x02\x01\f\vid:000010141\x100\x0e\x06\x05g\x81\x05\x02\x02\f\x05swtpm1\x160\x14\x06\x05g\x81\x05\x02\x03\f\vid:20191023"))
	f.Add([]byte{0x30, 0})
	f.Fuzz(func(t *testing.T, der []byte) { _ = checkTPMAltName(der) })
}
