//go:build tamago && arm

package virt

import (
	"fmt"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
)

// TPM TIS registers used to find the TPM (TCG PC Client Platform TPM
// Profile Specification for TPM 2.0, 6.5.2 Table 19: locality 0 offsets).
const (
	TPM_ACCESS  = 0x0000
	TPM_DID_VID = 0x0f00
)

// TPM is the register window of the TIS TPM on the platform bus.
var TPM = &mmio.Region{Base: TPM_BASE}

// ErrNoTPM says why the board has no TPM.
var ErrNoTPM = fmt.Errorf("virt: no TIS TPM described by the device tree (QEMU: -device tpm-tis-device with a swtpm backend): %w", board.ErrNoTPM)

// ProbeTPM finds the TIS TPM the device tree describes and reads its DID_VID
// register. Only a described device is touched: on the platform bus an
// address where no device sits aborts the access. A device whose backend is
// gone reads all zeros.
func ProbeTPM() (didVid uint32, err error) {
	if DeviceTree == nil {
		return 0, fmt.Errorf("%w: no device tree: %v", ErrNoTPM, DeviceTreeErr)
	}
	nodes := DeviceTree.Find("tcg,tpm-tis-mmio")
	if len(nodes) == 0 {
		return 0, ErrNoTPM
	}
	regs, err := nodes[0].PhysRegions()
	if err != nil || len(regs) == 0 {
		return 0, fmt.Errorf("%w: %v", ErrNoTPM, err)
	}
	if regs[0].Addr != TPM_BASE {
		return 0, fmt.Errorf("%w: TPM at %#x, this board expects it at %#x (make it the first dynamic sysbus device)", ErrNoTPM, regs[0].Addr, TPM_BASE)
	}
	v := mmio.Read32(TPM.Base + TPM_DID_VID)
	if v == 0 || v == 0xffffffff {
		return v, fmt.Errorf("virt: TPM at %#x does not answer (DID_VID %#x): backend gone?", TPM_BASE, v)
	}
	return v, nil
}
