package tis

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// fakeClock is the clock the driver and the I2C model share: Sleep
// advances it, nothing else does, so guard times are checked exactly and
// no test result depends on the wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1e9, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// i2cModel is a register-level model of the TCG I2C interface (PTP 8): the
// 8-bit register space, register pointer set by a write, LOC_SEL,
// I2C_INTERFACE_CAPABILITY with its guard time, DATA_CSUM_ENABLE and
// DATA_CSUM over the FIFO bytes since the last command/response boundary.
// The FIFO state machine is tisModel's, forwarding to swtpm. It records
// every guard-time violation (two transactions closer than the guard time
// by the shared clock).
type i2cModel struct {
	mu         sync.Mutex
	tis        *tisModel
	addr       uint8
	clock      *fakeClock
	guard      time.Duration
	ptr        uint8
	loc        uint8
	csumOn     bool
	csumData   []byte
	last       time.Time
	started    bool
	txs        int
	violations []string
}

func newI2CModel(backend transport.TPM, clock *fakeClock) *i2cModel {
	return &i2cModel{tis: newModel(backend), addr: DefaultI2CAddr, clock: clock, guard: 100 * time.Microsecond}
}

// capability is I2C_INTERFACE_CAPABILITY: guard time required between any
// two transactions (RR, RW, WR, WW), guard time in µs in bits 9..16.
func (m *i2cModel) capability() uint32 {
	return i2cCapGuardRR | i2cCapGuardRW | i2cCapGuardWR | i2cCapGuardWW |
		uint32(m.guard/time.Microsecond)<<i2cCapGuardMinShift
}

func (m *i2cModel) tisOff(reg uint8) (uint32, bool) {
	switch reg {
	case I2C_ACCESS:
		return TPM_ACCESS, true
	case I2C_STS:
		return TPM_STS, true
	case I2C_DATA_FIFO:
		return TPM_DATA_FIFO, true
	case I2C_DID_VID:
		return TPM_DID_VID, true
	case I2C_RID:
		return TPM_RID, true
	}
	return 0, false
}

func (m *i2cModel) Tx(addr uint8, w, r []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if addr != m.addr {
		return fmt.Errorf("model: address %#x: %w", addr, ErrNACK)
	}
	now := m.clock.Now()
	if m.started && now.Sub(m.last) < m.guard {
		m.violations = append(m.violations, fmt.Sprintf("transaction %d %v after the previous one, guard %v", m.txs, now.Sub(m.last), m.guard))
	}
	m.started, m.last = true, now
	m.txs++
	if len(w) > 0 {
		m.ptr = w[0]
		m.write(w[1:])
	}
	if len(r) > 0 {
		m.read(r)
	}
	return nil
}

func (m *i2cModel) write(p []byte) {
	if len(p) == 0 {
		return
	}
	switch m.ptr {
	case I2C_LOC_SEL:
		m.loc = p[0]
		return
	case I2C_DATA_CSUM_ENABLE:
		m.csumOn = p[0]&1 != 0
		return
	case I2C_DATA_FIFO:
		m.csumData = append(m.csumData, p...)
		for _, b := range p {
			m.tis.Write8(m.page()+TPM_DATA_FIFO, b)
		}
		return
	case I2C_STS:
		var b [4]byte
		copy(b[:], p)
		v := binary.LittleEndian.Uint32(b[:])
		if v&(STS_commandReady|STS_tpmGo|STS_responseRetry) != 0 {
			m.csumData = m.csumData[:0] // a command/response boundary
		}
		m.tis.Write32(m.page()+TPM_STS, v)
		return
	}
	if off, ok := m.tisOff(m.ptr); ok {
		m.tis.Write8(m.page()+off, p[0])
	}
}

// page is the TIS offset of the locality LOC_SEL selects (PTP 8: the I2C
// registers are those of the selected locality).
func (m *i2cModel) page() uint32 { return uint32(m.loc) * LocalityStride }

func (m *i2cModel) read(r []byte) {
	var reg []byte
	switch m.ptr {
	case I2C_LOC_SEL:
		reg = []byte{m.loc}
	case I2C_INTERFACE_CAPABILITY:
		reg = binary.LittleEndian.AppendUint32(nil, m.capability())
	case I2C_DATA_CSUM_ENABLE:
		reg = []byte{0}
		if m.csumOn {
			reg[0] = 1
		}
	case I2C_DATA_CSUM:
		reg = []byte{0, 0}
		if m.csumOn {
			reg = binary.BigEndian.AppendUint16(nil, CRC16Kermit(m.csumData))
		}
	case I2C_DATA_FIFO:
		for i := range r {
			r[i] = m.tis.Read8(m.page() + TPM_DATA_FIFO)
		}
		m.csumData = append(m.csumData, r...)
		return
	case I2C_STS, I2C_DID_VID:
		off, _ := m.tisOff(m.ptr)
		reg = binary.LittleEndian.AppendUint32(nil, m.tis.Read32(m.page()+off))
	case I2C_ACCESS, I2C_RID:
		off, _ := m.tisOff(m.ptr)
		reg = []byte{m.tis.Read8(m.page() + off)}
	}
	for i := range r {
		r[i] = 0xff
		if i < len(reg) {
			r[i] = reg[i]
		}
	}
}

// faultyI2C injects faults between the driver and the model: NACKs (the
// next nack transactions, or all when nackAll; the next nackLocSel
// transactions that write LOC_SEL), corruption of the last byte of the
// next corrupt FIFO reads and of the next corruptW FIFO writes. It records
// every LOC_SEL write it passes on (locSel) and every attempt (locSelTx).
type faultyI2C struct {
	mu         sync.Mutex
	bus        I2C
	nack       int
	nackAll    bool
	nackLocSel int
	corrupt    int
	corruptW   int
	ptr        uint8
	nacked     int
	locSel     []byte
	locSelTx   int
}

func (f *faultyI2C) Tx(addr uint8, w, r []byte) error {
	f.mu.Lock()
	if len(w) > 1 && w[0] == I2C_LOC_SEL {
		f.locSelTx++
		if f.nackLocSel > 0 {
			f.nackLocSel--
			f.nacked++
			f.mu.Unlock()
			return ErrNACK
		}
	}
	if f.nackAll || f.nack > 0 {
		if f.nack > 0 {
			f.nack--
		}
		f.nacked++
		f.mu.Unlock()
		return ErrNACK
	}
	if len(w) > 1 && w[0] == I2C_DATA_FIFO && f.corruptW > 0 {
		f.corruptW--
		w = append([]byte(nil), w...)
		w[len(w)-1] ^= 0x01
	}
	f.mu.Unlock()
	if err := f.bus.Tx(addr, w, r); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(w) > 0 {
		f.ptr = w[0]
	}
	if len(w) > 1 && w[0] == I2C_LOC_SEL {
		f.locSel = append(f.locSel, w[1])
	}
	if len(r) > 0 && f.ptr == I2C_DATA_FIFO && f.corrupt > 0 {
		f.corrupt--
		r[len(r)-1] ^= 0x01
	}
	return nil
}
