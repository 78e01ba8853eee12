package imxi2c

import (
	"errors"
	"fmt"

	"github.com/teastick/teastick/tpm/tis"
)

// TISBus is a Master as the TIS layer's I2C bus (tis.I2C): a NACK is
// reported as tis.ErrNACK as well, which tis.I2CRegs retries after its
// guard time (a busy TPM NACKs, PTP section 8).
type TISBus struct{ M *Master }

var _ tis.I2C = TISBus{}

// Tx runs one transaction on the bus.
func (b TISBus) Tx(addr uint8, w, r []byte) error {
	err := b.M.Tx(addr, w, r)
	if errors.Is(err, ErrNACK) {
		return fmt.Errorf("%w: %w", tis.ErrNACK, err)
	}
	return err
}
