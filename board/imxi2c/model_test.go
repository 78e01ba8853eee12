package imxi2c

import (
	"fmt"
	"strings"
	"time"
)

// controller is a register-level model of the i.MX I2C controller in
// master mode (IMX6ULLRM 31.5, 31.7) with devices on its bus: what the
// master's register accesses put on the wire is recorded as a trace of bus
// events ("S", "Sr", "P", "A5c+" for an address byte acknowledged, "W30+"
// for a data byte written and acknowledged, "R01+" / "R01-" for a byte
// read and acknowledged or not by the master), and protocol errors the
// master commits are collected in violations.
type controller struct {
	i2cr, i2sr, i2dr uint8
	ifdr             uint8

	devices map[uint8]device
	// afterAddr is true between a START and its address byte.
	afterAddr bool
	dev       device
	read      bool
	// rxPending is true while a received byte waits in I2DR.
	rxPending bool

	// stuck makes the controller never finish a byte (IIF never set):
	// a bus held low.
	stuck bool
	// loseArbitration makes the next address byte lose arbitration.
	loseArbitration bool
	// silentNACK leaves IIF clear when an address is not acknowledged
	// (as QEMU's imx_i2c model does).
	silentNACK bool
	// nackFirst makes the first nackFirst addressings NACK, device
	// present or not (a TPM waking up).
	nackFirst int

	trace      []string
	violations []string
}

// device is a bus device: it acknowledges writes and supplies reads.
type device interface {
	start(read bool)
	write(b byte) (ack bool)
	read() byte
	// ackRead sees the master's acknowledge of a byte read.
	ackRead(ack bool)
	stop()
}

// newController is a controller out of reset: I2SR 0x81 (ICF, RXAK;
// IMX6ULLRM 31.7.4).
func newController(devs map[uint8]device) *controller {
	return &controller{devices: devs, i2sr: I2SR_ICF | I2SR_RXAK}
}

func (c *controller) Read8(off uint32) uint8 {
	switch off {
	case I2Cx_IFDR:
		return c.ifdr
	case I2Cx_I2CR:
		return c.i2cr
	case I2Cx_I2SR:
		return c.i2sr
	case I2Cx_I2DR:
		v := c.i2dr
		if c.i2cr&I2CR_MTX == 0 && c.i2cr&I2CR_MSTA != 0 && c.dev != nil && c.read {
			// reading I2DR in master-receive mode clocks in the next
			// byte, acknowledged as TXAK says now
			c.receiveNext()
		} else if c.i2cr&I2CR_MTX == 0 && c.i2cr&I2CR_MSTA != 0 && !c.rxPending {
			c.violations = append(c.violations, "I2DR read in receive mode with no device addressed for reading")
		}
		c.rxPending = false
		return v
	}
	return 0
}

func (c *controller) receiveNext() {
	// a byte on the wire: ICF clear until it is complete (31.7.4)
	c.i2sr &^= I2SR_ICF
	if c.stuck {
		return
	}
	ack := c.i2cr&I2CR_TXAK == 0
	b := c.dev.read()
	c.dev.ackRead(ack)
	sign := "+"
	if !ack {
		sign = "-"
	}
	c.trace = append(c.trace, fmt.Sprintf("R%02x%s", b, sign))
	c.i2dr = b
	c.rxPending = true
	c.i2sr |= I2SR_IIF | I2SR_ICF
}

func (c *controller) Write8(off uint32, v uint8) {
	switch off {
	case I2Cx_IFDR:
		c.ifdr = v
	case I2Cx_I2SR:
		// IAL and IIF are cleared by writing 0 (31.7.4)
		c.i2sr &^= (^v) & (I2SR_IAL | I2SR_IIF)
	case I2Cx_I2CR:
		old := c.i2cr
		c.i2cr = v &^ I2CR_RSTA
		if v&I2CR_IEN == 0 {
			c.i2cr, c.i2sr = 0, 0
			return
		}
		switch {
		case old&I2CR_MSTA == 0 && v&I2CR_MSTA != 0:
			if c.i2sr&I2SR_IBB != 0 {
				c.violations = append(c.violations, "START on a busy bus")
			}
			c.trace = append(c.trace, "S")
			c.i2sr |= I2SR_IBB
			c.afterAddr = true
		case old&I2CR_MSTA != 0 && v&I2CR_MSTA == 0:
			c.trace = append(c.trace, "P")
			c.i2sr &^= I2SR_IBB
			if c.dev != nil {
				c.dev.stop()
			}
			c.dev = nil
		}
		if v&I2CR_RSTA != 0 {
			if old&I2CR_MSTA == 0 {
				c.violations = append(c.violations, "repeated START while not master")
			}
			c.trace = append(c.trace, "Sr")
			c.afterAddr = true
		}
	case I2Cx_I2DR:
		if c.i2cr&I2CR_MSTA == 0 {
			c.violations = append(c.violations, fmt.Sprintf("I2DR written (%#02x) while not master", v))
			return
		}
		if c.i2cr&I2CR_MTX == 0 {
			c.violations = append(c.violations, fmt.Sprintf("I2DR written (%#02x) in receive mode", v))
			return
		}
		if c.i2sr&I2SR_IIF != 0 {
			c.violations = append(c.violations, "I2DR written with IIF still set")
		}
		// a byte on the wire: ICF clear until it is complete (31.7.4)
		c.i2sr &^= I2SR_ICF
		if c.stuck {
			return
		}
		c.i2dr = v
		if c.afterAddr {
			c.afterAddr = false
			if c.loseArbitration {
				c.loseArbitration = false
				c.i2sr |= I2SR_IAL | I2SR_IIF
				c.i2sr &^= I2SR_IBB
				c.i2cr &^= I2CR_MSTA
				c.trace = append(c.trace, "lost")
				return
			}
			d, ok := c.devices[v>>1]
			if c.nackFirst > 0 {
				c.nackFirst--
				ok = false
			}
			ack := "+"
			if !ok {
				ack = "-"
				c.i2sr |= I2SR_RXAK
				c.dev = nil
			} else {
				c.i2sr &^= I2SR_RXAK
				c.dev, c.read = d, v&1 == 1
				d.start(c.read)
			}
			c.trace = append(c.trace, fmt.Sprintf("A%02x%s", v, ack))
			if ok || !c.silentNACK {
				c.i2sr |= I2SR_IIF | I2SR_ICF
			} else {
				// QEMU's imx_i2c: RXAK set, no interrupt, ICF as it was
				c.i2sr |= I2SR_ICF
			}
			return
		}
		if c.dev == nil || c.read {
			c.violations = append(c.violations, fmt.Sprintf("data byte %#02x written with no device addressed for writing", v))
			c.i2sr |= I2SR_RXAK | I2SR_IIF
			return
		}
		ack := c.dev.write(v)
		sign := "+"
		if !ack {
			sign = "-"
			c.i2sr |= I2SR_RXAK
		} else {
			c.i2sr &^= I2SR_RXAK
		}
		c.trace = append(c.trace, fmt.Sprintf("W%02x%s", v, sign))
		c.i2sr |= I2SR_IIF | I2SR_ICF
	}
}

func (c *controller) String() string { return strings.Join(c.trace, " ") }

// regFile is a device with an 8-bit register pointer: the first byte
// written sets it, later bytes are stored there, reads return bytes from
// it onward (a TCG I2C TPM's addressing, PTP 8.1).
type regFile struct {
	mem     [256]byte
	ptr     uint8
	first   bool
	nackAt  int // NACK the nth data byte written (0: none)
	written int
	// masterNACKs counts bytes the master did not acknowledge in a read.
	masterNACKs int
	reads       int
}

func (d *regFile) start(read bool) {
	d.first = !read
	d.written = 0
}
func (d *regFile) write(b byte) bool {
	d.written++
	if d.nackAt != 0 && d.written == d.nackAt {
		return false
	}
	if d.first {
		d.ptr, d.first = b, false
		return true
	}
	d.mem[d.ptr] = b
	d.ptr++
	return true
}
func (d *regFile) read() byte {
	d.reads++
	b := d.mem[d.ptr]
	d.ptr++
	return b
}
func (d *regFile) ackRead(ack bool) {
	if !ack {
		d.masterNACKs++
	}
}
func (d *regFile) stop() {}

// fakeClock advances by a step at each reading, so waits are bounded
// without real time passing.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(100 * time.Microsecond)
	return c.t
}
