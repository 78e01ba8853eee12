package tis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// I2C is a bus master: a board driver (i.MX6 I2C on the Mk II) implements
// it. Tx addresses the 7-bit device addr, writes w (if any), then reads
// len(r) bytes (if any), as one transaction (repeated start between the two
// parts). It returns an error wrapping ErrNACK when the device does not
// acknowledge.
type I2C interface {
	Tx(addr uint8, w, r []byte) error
}

// Register addresses of the TCG I2C interface, PTP v1.04 section 8 "I2C
// Interface", table 51 "I2C-TPM Register Overview". Unlike the MMIO
// interface there is one 8-bit register space; the locality is selected by
// writing TPM_LOC_SEL.
const (
	I2C_LOC_SEL              = 0x00 // 8 bit, locality select
	I2C_ACCESS               = 0x04 // 8 bit
	I2C_INT_ENABLE           = 0x08 // 32 bit
	I2C_INT_CAPABILITY       = 0x14 // 32 bit
	I2C_STS                  = 0x18 // 32 bit, same layout as TPM_STS
	I2C_DATA_FIFO            = 0x24 // FIFO
	I2C_INTERFACE_CAPABILITY = 0x30 // 32 bit, guard times, PTP 8.1.10
	I2C_DEVICE_ADDRESS       = 0x38 // 16 bit
	I2C_DATA_CSUM_ENABLE     = 0x40 // 8 bit, bit 0 enables DATA_CSUM
	I2C_DATA_CSUM            = 0x44 // 16 bit, CRC of the last FIFO data
	I2C_DID_VID              = 0x48 // 32 bit
	I2C_RID                  = 0x4C // 8 bit
	DefaultI2CAddr           = 0x2e // the usual TPM I2C address
	// DefaultI2CGuard is the guard time kept until
	// I2C_INTERFACE_CAPABILITY is read: the largest its 8-bit GUARD_TIME
	// field can announce, 5 µs above the spec's 250 µs default (PTP 8.1.10),
	// so no TPM sees a transaction too early.
	DefaultI2CGuard       = 255 * time.Microsecond
	DefaultI2CRetries     = 5
	DefaultI2CMaxTransfer = 32 // bytes per bus transaction
	i2cCapGuardSR         = 1 << 30
	i2cCapGuardRR         = 1 << 20
	i2cCapGuardRW         = 1 << 19
	i2cCapGuardWR         = 1 << 18
	i2cCapGuardWW         = 1 << 17
	i2cCapGuardMinShift   = 9
	i2cCapGuardMinMask    = 0xff << i2cCapGuardMinShift
	i2cCapReserved        = 1 << 31
)

var (
	// ErrNACK means the I2C device did not acknowledge (PTP section 8: a
	// TPM that is busy NACKs; the master retries after a guard time).
	ErrNACK = errors.New("tis: i2c NACK")
	// ErrChecksum means DATA_CSUM does not match the data read from the
	// FIFO (PTP section 8, DATA_CSUM).
	ErrChecksum = errors.New("tis: i2c data checksum mismatch")
)

// I2CRegs gives the TIS register space over the TCG I2C interface, so the
// TIS protocol code serves I2C TPMs unchanged. Register reads are a write of
// the register address then a read, as two transactions (as Linux's
// tpm_tis_i2c does); between transactions it keeps the guard time the TPM
// announces in I2C_INTERFACE_CAPABILITY (PTP 8.1.10; DefaultI2CGuard until
// read); a NACK is retried after DefaultI2CGuard, Retries attempts in all. Errors are sticky: a register
// access that failed reads all ones and Err returns it.
type I2CRegs struct {
	Bus  I2C
	Addr uint8 // 7-bit device address (default DefaultI2CAddr)
	// Retries bounds the attempts per transaction on NACK (default
	// DefaultI2CRetries).
	Retries int
	// Checksum enables DATA_CSUM_ENABLE at Init; the TIS then verifies each
	// response's checksum and re-reads it on mismatch.
	Checksum bool
	// MaxTransfer bounds the bytes moved per transaction (default
	// DefaultI2CMaxTransfer).
	MaxTransfer int
	// Now and Sleep are the clock hooks (default time.Now, time.Sleep).
	Now   func() time.Time
	Sleep func(time.Duration)

	mu         sync.Mutex
	guard      time.Duration
	guardRead  bool // guard after a read (RR or RW)
	guardWrite bool // guard after a write (WR or WW)
	last       time.Time
	lastWrite  bool
	started    bool
	locality   int
	err        error
	txs        int
	cap        uint32
}

var (
	_ Registers   = (*I2CRegs)(nil)
	_ FIFO        = (*I2CRegs)(nil)
	_ Checksummer = (*I2CRegs)(nil)
	_ BusErrors   = (*I2CRegs)(nil)
)

// Init reads I2C_INTERFACE_CAPABILITY for the guard time, selects locality
// 0 and sets DATA_CSUM_ENABLE as configured.
func (r *I2CRegs) Init() error {
	if r.Bus == nil {
		panic("tis: no I2C bus")
	}
	if r.Addr == 0 {
		r.Addr = DefaultI2CAddr
	}
	if r.Retries <= 0 {
		r.Retries = DefaultI2CRetries
	}
	if r.MaxTransfer <= 0 {
		r.MaxTransfer = DefaultI2CMaxTransfer
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Sleep == nil {
		r.Sleep = time.Sleep
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.guard, r.guardRead, r.guardWrite = DefaultI2CGuard, true, true
	var b [4]byte
	if err := r.readReg(I2C_INTERFACE_CAPABILITY, b[:]); err != nil {
		return fmt.Errorf("tis: i2c interface capability: %w", err)
	}
	c := binary.LittleEndian.Uint32(b[:])
	if c&i2cCapReserved != 0 {
		return fmt.Errorf("%w: I2C_INTERFACE_CAPABILITY %#08x has its reserved bit 31 set", ErrNoTPM, c)
	}
	r.cap = c
	r.guardRead = c&(i2cCapGuardRR|i2cCapGuardRW) != 0
	r.guardWrite = c&(i2cCapGuardWR|i2cCapGuardWW) != 0
	r.guard = time.Duration(c&i2cCapGuardMinMask>>i2cCapGuardMinShift) * time.Microsecond
	if err := r.writeReg(I2C_LOC_SEL, []byte{0}); err != nil {
		return fmt.Errorf("tis: i2c select locality 0: %w", err)
	}
	r.locality = 0
	en := byte(0)
	if r.Checksum {
		en = 1
	}
	if err := r.writeReg(I2C_DATA_CSUM_ENABLE, []byte{en}); err != nil {
		return fmt.Errorf("tis: i2c checksum enable: %w", err)
	}
	return nil
}

// Capability returns I2C_INTERFACE_CAPABILITY as read by Init.
func (r *I2CRegs) Capability() uint32 { return r.cap }

// Guard returns the guard time in force.
func (r *I2CRegs) Guard() time.Duration { return r.guard }

// Transactions returns the number of bus transactions so far.
func (r *I2CRegs) Transactions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.txs
}

// Err returns and clears the first bus error since the last call.
func (r *I2CRegs) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	r.err = nil
	return err
}

// tx runs one transaction after the guard time, retrying NACKs.
func (r *I2CRegs) tx(w, rd []byte) error {
	var err error
	for i := 0; i < r.Retries; i++ {
		if r.started && (r.lastWrite && r.guardWrite || !r.lastWrite && r.guardRead) {
			if d := r.last.Add(r.guard).Sub(r.Now()); d > 0 {
				r.Sleep(d)
			}
		}
		r.txs++
		err = r.Bus.Tx(r.Addr, w, rd)
		r.last, r.lastWrite, r.started = r.Now(), len(rd) == 0, true
		if err == nil || !errors.Is(err, ErrNACK) {
			break
		}
		// After a NACK wait the default guard time whatever the
		// capability says (Linux: GUARD_TIME_ERR, 250 µs).
		r.Sleep(DefaultI2CGuard)
	}
	if err != nil {
		return fmt.Errorf("tis: i2c device %#02x after %d attempts: %w", r.Addr, r.Retries, err)
	}
	return nil
}

func (r *I2CRegs) readReg(reg uint8, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), r.MaxTransfer)
		if err := r.tx([]byte{reg}, nil); err != nil {
			return err
		}
		if err := r.tx(nil, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (r *I2CRegs) writeReg(reg uint8, p []byte) error {
	buf := make([]byte, 1, 1+min(len(p), r.MaxTransfer))
	for len(p) > 0 {
		n := min(len(p), r.MaxTransfer)
		buf = append(buf[:1], p[:n]...)
		buf[0] = reg
		if err := r.tx(buf, nil); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// translate maps a TIS offset (locality page + register) to an I2C
// register, selecting the locality first (TPM_LOC_SEL).
func (r *I2CRegs) translate(off uint32) (uint8, error) {
	loc := int(off / LocalityStride)
	if loc != r.locality {
		if err := r.writeReg(I2C_LOC_SEL, []byte{byte(loc)}); err != nil {
			return 0, err
		}
		r.locality = loc
	}
	switch reg := off % LocalityStride; reg {
	case TPM_ACCESS:
		return I2C_ACCESS, nil
	case TPM_DID_VID:
		return I2C_DID_VID, nil
	case TPM_RID:
		return I2C_RID, nil
	case TPM_INT_ENABLE, TPM_INTF_CAPABILITY, TPM_STS, TPM_DATA_FIFO:
		return uint8(reg), nil
	case TPM_INTERFACE_ID:
		return I2C_INTERFACE_CAPABILITY, nil
	case TPM_DATA_CSUM_TIS:
		return I2C_DATA_CSUM, nil
	default:
		return 0, fmt.Errorf("tis: register %#x has no I2C counterpart", reg)
	}
}

func (r *I2CRegs) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *I2CRegs) read(off uint32, p []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, err := r.translate(off)
	if err == nil {
		err = r.readReg(reg, p)
	}
	if err != nil {
		r.fail(err)
		for i := range p {
			p[i] = 0xff
		}
		return false
	}
	return true
}

func (r *I2CRegs) write(off uint32, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, err := r.translate(off)
	if err == nil {
		err = r.writeReg(reg, p)
	}
	if err != nil {
		r.fail(err)
	}
}

func (r *I2CRegs) Read8(off uint32) uint8 {
	var b [1]byte
	r.read(off, b[:])
	return b[0]
}

func (r *I2CRegs) Write8(off uint32, v uint8) { r.write(off, []byte{v}) }

// Read32 reads a 32-bit register, little endian (PTP section 8: multi-byte
// registers are transferred least significant byte first).
func (r *I2CRegs) Read32(off uint32) uint32 {
	var b [4]byte
	r.read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (r *I2CRegs) Write32(off uint32, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	r.write(off, b[:])
}

// ReadFIFO reads a burst from the FIFO in as few transactions as
// MaxTransfer allows.
func (r *I2CRegs) ReadFIFO(off uint32, p []byte) error {
	if !r.read(off, p) {
		return r.Err()
	}
	return nil
}

// WriteFIFO writes a burst to the FIFO.
func (r *I2CRegs) WriteFIFO(off uint32, p []byte) error {
	r.write(off, p)
	return r.Err()
}

// VerifyChecksum compares DATA_CSUM with the CRC of data, the bytes the
// FIFO moved since the last command/response boundary. A no-op unless
// Checksum is set.
func (r *I2CRegs) VerifyChecksum(data []byte) error {
	if !r.Checksum {
		return nil
	}
	var b [2]byte
	if !r.read(TPM_DATA_CSUM_TIS, b[:]) {
		return r.Err()
	}
	got, want := binary.BigEndian.Uint16(b[:]), CRC16Kermit(data)
	if got != want {
		return fmt.Errorf("%w: DATA_CSUM %#04x, data %#04x over %d bytes", ErrChecksum, got, want, len(data))
	}
	return nil
}

// TPM_DATA_CSUM_TIS is DATA_CSUM's place in the TIS offset space this
// package uses (no MMIO register lives there).
const TPM_DATA_CSUM_TIS = 0x0044

// CRC16Kermit is the checksum of DATA_CSUM (PTP section 8: CRC-16/CCITT,
// reflected polynomial 0x8408, initial value 0, the variant Linux calls
// crc_ccitt and catalogues name KERMIT). DATA_CSUM holds it most
// significant byte first (Linux tpm_tis_i2c compares the little-endian
// register with the byte-swapped CRC).
func CRC16Kermit(p []byte) uint16 {
	var crc uint16
	for _, b := range p {
		crc ^= uint16(b)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
