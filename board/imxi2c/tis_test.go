package imxi2c

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/teastick/teastick/tpm/tis"
)

// TestTISOverMaster brings up the TCG I2C interface (tis.I2CRegs) through
// the master and the controller model, on a TPM that NACKs its first
// addresses: the NACKs reach the TIS layer as tis.ErrNACK and are retried,
// and the registers read through the master are the device's.
func TestTISOverMaster(t *testing.T) {
	dev := &regFile{}
	binary.LittleEndian.PutUint32(dev.mem[tis.I2C_INTERFACE_CAPABILITY:], 1<<9) // GUARD_TIME 1 µs (PTP 8.1.10)
	binary.LittleEndian.PutUint32(dev.mem[tis.I2C_DID_VID:], 0x001b15d1)
	c := newController(map[uint8]device{0x2e: dev})
	c.nackFirst = 2
	clk := &fakeClock{}
	m := &Master{Regs: c, Now: clk.now}
	m.Init()
	r := &tis.I2CRegs{Bus: TISBus{m}, Addr: 0x2e, Sleep: func(time.Duration) {}}
	if err := r.Init(); err != nil {
		t.Fatalf("I2CRegs.Init: %v (trace %s)", err, c)
	}
	if got := r.Read32(0x0f00); got != 0x001b15d1 {
		t.Errorf("DID_VID %#08x, want 0x001b15d1 (trace %s)", got, c)
	}
	if err := r.Err(); err != nil {
		t.Error(err)
	}
	if dev.mem[tis.I2C_LOC_SEL] != 0 || dev.mem[tis.I2C_DATA_CSUM_ENABLE] != 0 {
		t.Errorf("LOC_SEL %d, DATA_CSUM_ENABLE %d after Init, want 0 and 0", dev.mem[tis.I2C_LOC_SEL], dev.mem[tis.I2C_DATA_CSUM_ENABLE])
	}
	if len(c.violations) > 0 {
		t.Errorf("protocol violations: %q", c.violations)
	}
}

// TestTISBusNACK checks an absent device is a tis.ErrNACK and an
// imxi2c.ErrNACK, and a stuck bus neither.
func TestTISBusNACK(t *testing.T) {
	c := newController(nil)
	m := &Master{Regs: c, Now: (&fakeClock{}).now}
	m.Init()
	err := TISBus{m}.Tx(0x2e, []byte{0x30}, make([]byte, 4))
	if !errors.Is(err, tis.ErrNACK) || !errors.Is(err, ErrNACK) {
		t.Errorf("absent device: %v, want tis.ErrNACK and ErrNACK", err)
	}
	c.stuck = true
	err = TISBus{m}.Tx(0x2e, []byte{0x30}, make([]byte, 4))
	if errors.Is(err, tis.ErrNACK) || !errors.Is(err, ErrTimeout) {
		t.Errorf("stuck bus: %v, want ErrTimeout and no NACK", err)
	}
}
