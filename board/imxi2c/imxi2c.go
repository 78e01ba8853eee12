// Package imxi2c is a bus master for the NXP i.MX I2C controller (the
// i.MX6ULL/ULZ of the USB armory Mk II has four), written against a
// register interface so that its transaction sequencing is tested on the
// host against a model of the controller (model_test.go). It implements
// tis.I2C: a register-address write, a repeated START and a read as one
// transaction, as the TCG I2C interface needs, and it reports a NACK
// distinguishably (ErrNACK), which the TIS layer retries.
//
// References: i.MX 6ULL Applications Processor Reference Manual (IMX6ULLRM)
// Rev. 1, chapter 31 "I2C Controller (I2C)": 31.5.1 initialization, 31.7
// register map; i.MX 6 Series Firmware Guide (IMX6FG) Rev. 0, 16.4.2 and
// 16.4.4, programming reads and writes; NXP UM10204 I2C-bus specification
// Rev. 7, 3.1.6 (a master-receiver ends a read with a NACK) and 3.1.10
// (7-bit address and R/W bit).
//
// It has no build constraint: the board (board/usbarmory/mk2) gives it
// the controller's registers.
package imxi2c

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Registers of one I2C controller (IMX6ULLRM 31.7): 16 bits wide, 4 bytes
// apart; only the low byte carries bits, and Linux's i2c-imx driver, as
// this one, accesses them as bytes.
const (
	I2Cx_IADR = 0x00
	I2Cx_IFDR = 0x04
	I2Cx_I2CR = 0x08
	I2Cx_I2SR = 0x0c
	I2Cx_I2DR = 0x10

	// I2CR bits (31.7.3)
	I2CR_IEN  = 1 << 7 // module enable
	I2CR_IIEN = 1 << 6 // interrupt enable
	I2CR_MSTA = 1 << 5 // master: 0->1 START, 1->0 STOP
	I2CR_MTX  = 1 << 4 // transmit (1) or receive (0)
	I2CR_TXAK = 1 << 3 // 1: no acknowledge of the next byte received
	I2CR_RSTA = 1 << 2 // repeated START (self-clearing)

	// I2SR bits (31.7.4)
	I2SR_ICF  = 1 << 7 // transfer complete
	I2SR_IAAS = 1 << 6 // addressed as a slave
	I2SR_IBB  = 1 << 5 // bus busy
	I2SR_IAL  = 1 << 4 // arbitration lost (write 0 to clear)
	I2SR_SRW  = 1 << 2
	I2SR_IIF  = 1 << 1 // interrupt pending (write 0 to clear)
	I2SR_RXAK = 1 << 0 // 1: no acknowledge received

	// DefaultIFDR divides the 66 MHz IPG clock by 768: about 86 kHz
	// (31.7.2 Table 31-3; tamago's soc/nxp/i2c default).
	DefaultIFDR = 0x16
	// DefaultTimeout bounds each wait for the controller: a byte at 86
	// kHz takes about 105 µs.
	DefaultTimeout = 10 * time.Millisecond
)

var (
	// ErrNACK means the addressed device, or a byte written to it, was
	// not acknowledged: no device at that address, or a busy one.
	ErrNACK = errors.New("imxi2c: no acknowledge")
	// ErrTimeout means the controller did not finish a step in time: the
	// bus is held low, or the controller is not clocked.
	ErrTimeout = errors.New("imxi2c: timeout")
	// ErrArbitration means another master took the bus.
	ErrArbitration = errors.New("imxi2c: arbitration lost")
)

// Regs is the controller's register window (8-bit accesses).
type Regs interface {
	Read8(off uint32) uint8
	Write8(off uint32, v uint8)
}

// Master drives one controller as the only master on its bus.
type Master struct {
	Regs Regs
	// IFDR is the frequency divider (default DefaultIFDR).
	IFDR uint8
	// Timeout bounds each wait (default DefaultTimeout).
	Timeout time.Duration
	// Now is the clock the waits are bounded by (default time.Now).
	Now func() time.Time

	mu sync.Mutex
}

// Init sets the bus clock and enables the controller (IMX6ULLRM 31.5.1).
// The board enables the controller's clock gate and pin mux before.
func (m *Master) Init() {
	if m.Regs == nil {
		panic("imxi2c: no registers")
	}
	if m.IFDR == 0 {
		m.IFDR = DefaultIFDR
	}
	if m.Timeout == 0 {
		m.Timeout = DefaultTimeout
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	m.Regs.Write8(I2Cx_I2CR, 0)
	m.Regs.Write8(I2Cx_IFDR, m.IFDR)
	m.Regs.Write8(I2Cx_I2CR, I2CR_IEN)
	m.Regs.Write8(I2Cx_I2SR, 0)
}

// Tx addresses the 7-bit device addr, writes w, then (after a repeated
// START when w is not empty) reads len(r) bytes, as one transaction ending
// in a STOP. With neither, it only addresses the device (a probe). A
// device that does not acknowledge gives an error wrapping ErrNACK.
func (m *Master) Tx(addr uint8, w, r []byte) error {
	if addr > 0x7f {
		return fmt.Errorf("imxi2c: address %#x is not a 7-bit address", addr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.start(); err != nil {
		return fmt.Errorf("imxi2c: %#02x: start: %w", addr, err)
	}
	err := m.transfer(addr, w, r)
	if serr := m.stop(); err == nil && serr != nil {
		err = fmt.Errorf("stop: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("imxi2c: %#02x: %w", addr, err)
	}
	return nil
}

func (m *Master) transfer(addr uint8, w, r []byte) error {
	if len(w) > 0 || len(r) == 0 {
		if err := m.send(addr<<1, true); err != nil {
			return err
		}
		for i, b := range w {
			if err := m.send(b, false); err != nil {
				return fmt.Errorf("byte %d of %d written: %w", i, len(w), err)
			}
		}
	}
	if len(r) == 0 {
		return nil
	}
	if len(w) > 0 {
		m.set(I2CR_RSTA)
	}
	if err := m.send(addr<<1|1, true); err != nil {
		return err
	}
	return m.receive(r)
}

// start waits for a free bus and takes it: MSTA 0->1 sends START
// (IMX6FG 16.4.2 steps 1-3).
func (m *Master) start() error {
	if err := m.wait(I2SR_IBB, 0); err != nil {
		return fmt.Errorf("bus busy: %w", err)
	}
	m.Regs.Write8(I2Cx_I2SR, 0)
	m.set(I2CR_MSTA | I2CR_MTX)
	if err := m.wait(I2SR_IBB, I2SR_IBB); err != nil {
		m.clear(I2CR_MSTA | I2CR_MTX)
		return err
	}
	return nil
}

// stop releases the bus: MSTA 1->0 sends STOP.
func (m *Master) stop() error {
	if m.Regs.Read8(I2Cx_I2CR)&I2CR_MSTA != 0 {
		m.clear(I2CR_MSTA | I2CR_MTX | I2CR_TXAK)
	}
	return m.wait(I2SR_IBB, 0)
}

// send transmits one byte and checks its acknowledge. The byte is done
// when IIF is set (IMX6ULLRM 31.7.4), and then RXAK is its acknowledge.
// QEMU's imx_i2c sets RXAK without IIF when nothing answers an address, so
// a byte whose IIF does not come counts as not acknowledged if ICF says
// the transfer is complete and RXAK is set; with ICF clear the byte is
// still on a stuck bus (RXAK then only holds the previous byte's
// acknowledge).
func (m *Master) send(b byte, address bool) error {
	m.Regs.Write8(I2Cx_I2SR, 0)
	m.Regs.Write8(I2Cx_I2DR, b)
	err := m.wait(I2SR_IIF, I2SR_IIF)
	sr := m.Regs.Read8(I2Cx_I2SR)
	m.Regs.Write8(I2Cx_I2SR, 0)
	nack := sr&I2SR_RXAK != 0 && (err == nil || sr&I2SR_ICF != 0)
	switch {
	case sr&I2SR_IAL != 0:
		return ErrArbitration
	case nack && address:
		return fmt.Errorf("address not acknowledged: %w", ErrNACK)
	case nack:
		return ErrNACK
	case err != nil:
		return err
	}
	return nil
}

// receive reads len(r) bytes as master-receiver: every byte but the last
// acknowledged, the last not (UM10204 3.1.6), STOP sent before the last
// byte is read from I2DR so that the controller clocks no further byte
// (IMX6FG 16.4.2 steps 7-10; Linux i2c-imx).
func (m *Master) receive(r []byte) error {
	m.clear(I2CR_MTX)
	if len(r) == 1 {
		m.set(I2CR_TXAK)
	} else {
		m.clear(I2CR_TXAK)
	}
	m.Regs.Write8(I2Cx_I2SR, 0)
	m.Regs.Read8(I2Cx_I2DR) // dummy read: starts the first byte
	for i := range r {
		if err := m.wait(I2SR_IIF, I2SR_IIF); err != nil {
			return fmt.Errorf("byte %d of %d read: %w", i, len(r), err)
		}
		m.Regs.Write8(I2Cx_I2SR, 0)
		switch i {
		case len(r) - 1:
			m.clear(I2CR_MSTA | I2CR_MTX | I2CR_TXAK)
		case len(r) - 2:
			m.set(I2CR_TXAK)
		}
		r[i] = m.Regs.Read8(I2Cx_I2DR)
	}
	return nil
}

func (m *Master) set(bits uint8) {
	m.Regs.Write8(I2Cx_I2CR, m.Regs.Read8(I2Cx_I2CR)|bits)
}

func (m *Master) clear(bits uint8) {
	m.Regs.Write8(I2Cx_I2CR, m.Regs.Read8(I2Cx_I2CR)&^bits)
}

// wait polls I2SR until its mask bits equal want, or Timeout passes.
func (m *Master) wait(mask, want uint8) error {
	deadline := m.Now().Add(m.Timeout)
	for {
		if m.Regs.Read8(I2Cx_I2SR)&mask == want {
			return nil
		}
		if m.Now().After(deadline) {
			return fmt.Errorf("%w waiting for I2SR %#02x to be %#02x (I2SR %#02x)", ErrTimeout, mask, want, m.Regs.Read8(I2Cx_I2SR))
		}
	}
}
