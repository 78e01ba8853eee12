//go:build tamago && riscv64

package virtrv64

import (
	"fmt"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
)

// TPM TIS registers used to find the TPM (TCG PC Client Platform TPM
// Profile Specification for TPM 2.0, 6.5.2 Table 19: locality 0 offsets).
const (
	TPM_DID_VID = 0x0f00
)

// TPM is the register window of the TIS TPM on the platform bus.
var TPM = &mmio.Region{Base: TPM_BASE}

// ErrNoTPM says why the board has no TPM.
var ErrNoTPM = fmt.Errorf("virtrv64: no TIS TPM at %#x (QEMU: -device tpm-tis-device with a swtpm backend): %w", TPM_BASE, board.ErrNoTPM)

// probe32 reads the 32-bit register at addr; ok is false when the read
// faulted (no device there): a load access fault is caught and skipped.
func probe32(addr uintptr) (val uint32, ok bool)

// ProbeTPM reads the DID_VID register of a TIS TPM at TPM_BASE. QEMU 7.2's
// devicetree does not describe tpm-tis-device on this machine, so the
// board probes the address: where no device sits, the read faults, which
// probe32 catches. A device whose backend is gone reads all zeros.
func ProbeTPM() (didVid uint32, err error) {
	v, ok := probe32(TPM_BASE + TPM_DID_VID)
	if !ok {
		return 0, ErrNoTPM
	}
	if v == 0 || v == 0xffffffff {
		return v, fmt.Errorf("virtrv64: TPM at %#x does not answer (DID_VID %#x): backend gone?", TPM_BASE, v)
	}
	return v, nil
}
