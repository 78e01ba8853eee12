package measure

import (
	"encoding/binary"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Warning response codes after which the TPM wants the same command again
// (TPM 2.0 Part 2, 6.6.3 "TPM_RC": TPM_RC_RETRY, TPM_RC_YIELDED,
// TPM_RC_TESTING). swtpm answers TPM_RC_RETRY now and then.
const (
	rcYielded = 0x908
	rcTesting = 0x90A
	rcRetry   = 0x922
)

// MaxRetries bounds how often Retrying resends one command.
const MaxRetries = 20

// retrying resends a command the TPM asks to retry.
type retrying struct {
	transport.TPM
}

var _ transport.TPM = retrying{}

// Retrying returns tpm resending each command the TPM answers with
// TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING, up to MaxRetries times
// with a growing pause. Measurer and attest.Attester use it.
func Retrying(tpm transport.TPM) transport.TPM {
	if r, ok := tpm.(retrying); ok {
		return r
	}
	return retrying{tpm}
}

func (r retrying) Send(cmd []byte) ([]byte, error) {
	pause := 100 * time.Microsecond
	for i := 0; ; i++ {
		rsp, err := r.TPM.Send(cmd)
		if err != nil || len(rsp) < 10 || i == MaxRetries {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case rcRetry, rcYielded, rcTesting:
			time.Sleep(pause)
			pause = min(2*pause, 50*time.Millisecond)
			continue
		}
		return rsp, nil
	}
}
