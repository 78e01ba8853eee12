//go:build tamago && arm

package mk2

import (
	"fmt"
	"time"

	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/imxi2c"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/tpm/tis"
)

// The TPM is a TCG I2C TPM 2.0 (Infineon SLB9673 or another part of the
// PC Client PTP's I2C interface) on I2C1 at its default address 0x2e.
// I2C1 is the Mk II's internal bus (SCL GPIO1_IO02, SDA GPIO1_IO03, muxed
// by the boot image's DCD and clocked by tamago's mk2 package); its other
// devices sit at 0x08 (PF1510 PMIC), 0x31 (FUSB303), 0x48 (SE050 or
// A71CH), 0x60 (ATECC608A) and 0x61 (TUSB320), none at 0x2e.
const (
	TPM_I2C_BUS  = "I2C1"
	TPM_I2C_BASE = imx6ul.I2C1_BASE
	TPM_I2C_ADDR = tis.DefaultI2CAddr

	// TIS register offsets the probe reads (PTP 6.5.2 Table 19; I2CRegs
	// translates them to the I2C interface's).
	TPM_DID_VID = 0x0f00

	// probeAttempts bounds the probe: a TPM may NACK while it wakes
	// (PTP 8.3), so it is addressed this many times, probeGap apart,
	// before the board says it has none.
	probeAttempts = 3
	probeGap      = time.Millisecond
)

// I2C1 is the controller the TPM is on.
var I2C1 = &imxi2c.Master{Regs: mmio.Region{Base: TPM_I2C_BASE}}

var tpmRegs *tis.I2CRegs

// ProbeTPM addresses the TPM on its I2C bus (a bounded probe: no answer
// means board.ErrNoTPM within a few milliseconds), brings up the TCG I2C
// interface and reads DID_VID. An emulated board has no TPM whatever
// answers (entropy.go).
func ProbeTPM() (board.Registers, uint64, uint32, error) {
	where := fmt.Sprintf("%s at %#02x", TPM_I2C_BUS, TPM_I2C_ADDR)
	if tpmRegs == nil {
		I2C1.Init()
		var err error
		for i := 0; i < probeAttempts; i++ {
			if err = I2C1.Tx(TPM_I2C_ADDR, nil, nil); err == nil {
				break
			}
			time.Sleep(probeGap)
		}
		if err != nil {
			return nil, TPM_I2C_ADDR, 0, fmt.Errorf("mk2: no TPM on %s: %v: %w", where, err, board.ErrNoTPM)
		}
		if !imx6ul.Native {
			return nil, TPM_I2C_ADDR, 0, fmt.Errorf("mk2: TPM on %s refused: %s: %w", where, errEmulated, board.ErrNoTPM)
		}
		r := &tis.I2CRegs{Bus: imxi2c.TISBus{M: I2C1}, Addr: TPM_I2C_ADDR, Checksum: true}
		if err := r.Init(); err != nil {
			return nil, TPM_I2C_ADDR, 0, fmt.Errorf("mk2: TPM on %s: %w", where, err)
		}
		tpmRegs = r
	}
	id := tpmRegs.Read32(TPM_DID_VID)
	if err := tpmRegs.Err(); err != nil {
		return nil, TPM_I2C_ADDR, id, fmt.Errorf("mk2: TPM on %s: DID_VID: %w", where, err)
	}
	return tpmRegs, TPM_I2C_ADDR, id, nil
}
