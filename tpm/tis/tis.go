// Package tis is a TPM 2.0 driver for the FIFO interface of the TCG PC Client
// Platform TPM Profile (PTP), the "TIS" register interface QEMU's
// tpm-tis-device and most discrete TPMs expose. It implements go-tpm's
// transport.TPM on top of a small register-access interface, so the same
// protocol code serves memory-mapped TPMs (MMIO, board.Board's TPM
// registers) and TPMs behind the TCG I2C interface (I2CRegs over an I2C
// bus); optional interfaces (FIFO, Checksummer, BusErrors) let a transport
// move bursts, check DATA_CSUM and report bus failures.
//
// The driver polls (no interrupts) and bounds every wait with the PTP
// interface timeouts; the clock and sleep are hooks so bare metal can supply
// its own.
package tis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Registers gives access to the TIS register space. Offsets include the
// locality (LocalityStride per locality). Implementations must not reorder
// accesses.
type Registers interface {
	Read8(off uint32) uint8
	Write8(off uint32, v uint8)
	Read32(off uint32) uint32
	Write32(off uint32, v uint32)
}

// FIFO is implemented by register transports that move a whole burst in
// one bus transaction and can report a failure (I2C). The TIS uses it for
// DATA_FIFO when present, Read8/Write8 per byte otherwise (MMIO).
type FIFO interface {
	ReadFIFO(off uint32, p []byte) error
	WriteFIFO(off uint32, p []byte) error
}

// Checksummer is implemented by transports with a data checksum (I2C
// DATA_CSUM, PTP section 8). VerifyChecksum checks the bytes just moved
// through the FIFO (a whole command or response) and returns an error
// wrapping ErrChecksum on mismatch; the TIS then writes the command again
// (after commandReady) or asks the TPM to resend the response
// (responseRetry).
type Checksummer interface {
	VerifyChecksum(data []byte) error
}

// BusErrors is implemented by transports whose register accesses can fail
// (a NACK on I2C). Err returns and clears the first failure; the TIS stops
// waiting on a failed bus and wraps the failure into its error.
type BusErrors interface {
	Err() error
}

var (
	// ErrNoTPM means no TPM answers: TPM_DID_VID reads all zeros or all
	// ones, or the TPM is not a TPM 2.0.
	ErrNoTPM = errors.New("tis: no TPM")
	// ErrTimeout means the TPM did not reach a state within its timeout.
	ErrTimeout = errors.New("tis: timeout")
	// ErrResponseTooLarge means a response is larger than MaxResponse or
	// than its own header says.
	ErrResponseTooLarge = errors.New("tis: response too large")
	// ErrTruncated means the TPM stopped offering response bytes before
	// the size its header announced, or announced less than a header.
	ErrTruncated = errors.New("tis: response truncated")
	// ErrProtocol means the TPM's status contradicts the FIFO protocol,
	// for example it stops expecting command bytes before the end.
	ErrProtocol = errors.New("tis: protocol violation")
	// ErrCommandSize means a command is shorter than a header or larger
	// than MaxCommand.
	ErrCommandSize = errors.New("tis: bad command size")
)

// Defaults.
const (
	// DefaultCommandTimeout bounds a command's execution. The PTP leaves
	// command durations to the TPM (TPM_PT_*); RSA key generation on a
	// discrete TPM can take tens of seconds.
	DefaultCommandTimeout = 2 * time.Minute
	// DefaultMaxResponse is the largest response accepted, the usual
	// TPM input/output buffer size.
	DefaultMaxResponse = 4096
	// DefaultPoll is the interval between status polls.
	DefaultPoll = 10 * time.Microsecond
	// responseAttempts bounds the reads of one response, and the writes
	// of one command, with checksum errors.
	responseAttempts = 3

	headerSize = 10
)

// TIS is a TPM behind the FIFO interface. Exported fields are its
// configuration; zero values take the defaults. Init must be called once
// before Send.
type TIS struct {
	// Regs is the register space (locality 0 at offset 0).
	Regs Registers
	// Locality is the locality used (0..4).
	Locality uint8
	// CommandTimeout bounds command execution (default DefaultCommandTimeout).
	CommandTimeout time.Duration
	// Timeout scales the PTP interface timeouts TIMEOUT_A..D; 1 (or 0) is
	// the spec's values. Tests use less.
	TimeoutScale float64
	// MaxResponse bounds response size (default DefaultMaxResponse).
	MaxResponse int
	// Now and Sleep are the clock hooks (default time.Now and time.Sleep).
	Now   func() time.Time
	Sleep func(time.Duration)
	// Poll is the status polling interval (default DefaultPoll).
	Poll time.Duration
	// Log receives driver events (default slog.Default()).
	Log *slog.Logger

	mu      sync.Mutex
	didVID  uint32
	intfCap uint32
	rid     uint8
	inited  bool
}

var _ transport.TPM = (*TIS)(nil)

func (t *TIS) reg(r uint32) uint32 { return uint32(t.Locality)*LocalityStride + r }

func (t *TIS) timeout(d time.Duration) time.Duration {
	if t.TimeoutScale > 0 {
		return time.Duration(float64(d) * t.TimeoutScale)
	}
	return d
}

// Init checks that a TPM 2.0 answers and fills in the defaults. It returns
// ErrNoTPM when TPM_DID_VID reads all zeros or all ones (QEMU reads zeros
// when the swtpm backend is gone) or when the TPM is not a TPM 2.0.
func (t *TIS) Init() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Regs == nil {
		panic("tis: no Registers")
	}
	if t.Locality > 4 {
		panic("tis: locality out of range")
	}
	if t.CommandTimeout == 0 {
		t.CommandTimeout = DefaultCommandTimeout
	}
	if t.MaxResponse == 0 {
		t.MaxResponse = DefaultMaxResponse
	}
	if t.Now == nil {
		t.Now = time.Now
	}
	if t.Sleep == nil {
		t.Sleep = time.Sleep
	}
	if t.Poll == 0 {
		t.Poll = DefaultPoll
	}
	if t.Log == nil {
		t.Log = slog.Default()
	}
	t.Log = t.Log.With("component", "tpm")
	t.busErr() // forget failures before Init
	if err := t.probe(); err != nil {
		return t.withBus(err)
	}
	if err := t.requestLocality(); err != nil {
		return t.withBus(err)
	}
	sts := t.Regs.Read32(t.reg(TPM_STS))
	if fam := sts & STS_tpmFamily_mask >> STS_tpmFamily_shift; fam != STS_tpmFamily_TPM20 {
		t.releaseLocality()
		return fmt.Errorf("%w: TPM_STS %#08x: tpmFamily %d is not TPM 2.0", ErrNoTPM, sts, fam)
	}
	t.intfCap = t.Regs.Read32(t.reg(TPM_INTF_CAPABILITY))
	t.releaseLocality()
	t.rid = t.Regs.Read8(t.reg(TPM_RID))
	t.inited = true
	t.Log.Debug("TIS TPM found", "did_vid", fmt.Sprintf("%#08x", t.didVID), "rid", t.rid,
		"intf_capability", fmt.Sprintf("%#08x", t.intfCap), "locality", t.Locality)
	return nil
}

// DIDVID returns TPM_DID_VID as read by Init (vendor in the low 16 bits).
func (t *TIS) DIDVID() uint32 { return t.didVID }

// InterfaceCapability returns TPM_INTF_CAPABILITY as read by Init (PTP
// 6.5.2.7: interface version, data transfer sizes, static burst count).
// The driver needs none of it: it polls and writes byte-wide.
func (t *TIS) InterfaceCapability() uint32 { return t.intfCap }

// busErr returns the transport's pending failure, if it reports any.
func (t *TIS) busErr() error {
	if b, ok := t.Regs.(BusErrors); ok {
		return b.Err()
	}
	return nil
}

// withBus adds the transport's pending failure to err.
func (t *TIS) withBus(err error) error {
	if err == nil {
		return nil
	}
	if berr := t.busErr(); berr != nil {
		return fmt.Errorf("%w (bus: %w)", err, berr)
	}
	return err
}

func (t *TIS) probe() error {
	id := t.Regs.Read32(t.reg(TPM_DID_VID))
	if id == 0 || id == 0xffffffff {
		return fmt.Errorf("%w: TPM_DID_VID reads %#08x", ErrNoTPM, id)
	}
	t.didVID = id
	return nil
}

// wait polls cond until it holds or d passes. On timeout it returns
// ErrTimeout naming what, and ErrNoTPM as well if the TPM vanished.
func (t *TIS) wait(what string, d time.Duration, cond func() bool) error {
	deadline := t.Now().Add(d)
	for {
		if cond() {
			return nil
		}
		if berr := t.busErr(); berr != nil {
			return fmt.Errorf("tis: waiting for %s: %w", what, berr)
		}
		if t.Now().After(deadline) {
			if cond() {
				return nil
			}
			if id := t.Regs.Read32(t.reg(TPM_DID_VID)); id == 0 || id == 0xffffffff {
				return fmt.Errorf("%w: %w: waiting for %s, TPM_DID_VID reads %#08x", ErrTimeout, ErrNoTPM, what, id)
			}
			return fmt.Errorf("%w: waiting %v for %s", ErrTimeout, d, what)
		}
		t.Sleep(t.Poll)
	}
}

func (t *TIS) access() uint8 { return t.Regs.Read8(t.reg(TPM_ACCESS)) }
func (t *TIS) sts() uint32   { return t.Regs.Read32(t.reg(TPM_STS)) }

// granted reports whether TPM_ACCESS says the locality is ours. A value
// with a bit set that reads 0 (ACCESS_readZero) is a failed read, such as
// the all ones of a NACKed I2C access, not a grant.
func granted(access uint8) bool {
	const want = ACCESS_tpmRegValidSts | ACCESS_activeLocality
	return access&ACCESS_readZero == 0 && access&want == want
}

// requestLocality asks for the locality and waits TIMEOUT_A for it
// (PTP 6.5.2.3: write requestUse, activeLocality is set when granted). A
// bus failure while reading TPM_ACCESS fails the request at once: nothing
// is written to the registers of a locality not known to be held (over
// I2C a failed TPM_LOC_SEL leaves another locality selected).
func (t *TIS) requestLocality() error {
	a := t.access()
	if err := t.busErr(); err != nil {
		return fmt.Errorf("tis: request locality %d: %w", t.Locality, err)
	}
	if granted(a) {
		return nil
	}
	t.Regs.Write8(t.reg(TPM_ACCESS), ACCESS_requestUse)
	if err := t.wait("activeLocality", t.timeout(TIMEOUT_A), func() bool { return granted(t.access()) }); err != nil {
		return fmt.Errorf("tis: request locality %d: %w", t.Locality, err)
	}
	return nil
}

// releaseLocality relinquishes the locality by writing activeLocality.
func (t *TIS) releaseLocality() {
	t.Regs.Write8(t.reg(TPM_ACCESS), ACCESS_activeLocality)
}

func (t *TIS) burstCount() uint32 {
	return t.sts() & STS_burstCount_mask >> STS_burstCount_shift
}

// waitBurst waits TIMEOUT_D for a non-zero burstCount (PTP 6.5.2.8).
func (t *TIS) waitBurst() (int, error) {
	var b uint32
	err := t.wait("burstCount", t.timeout(TIMEOUT_D), func() bool {
		s := t.sts()
		b = s & STS_burstCount_mask >> STS_burstCount_shift
		return s != 0xffffffff && b > 0
	})
	return int(b), err
}

// waitValid waits TIMEOUT_C for stsValid and returns the status.
func (t *TIS) waitValid() (uint32, error) {
	var s uint32
	err := t.wait("stsValid", t.timeout(TIMEOUT_C), func() bool {
		s = t.sts()
		return s != 0xffffffff && s&STS_stsValid != 0
	})
	return s, err
}

// ready moves the TPM to the Ready state (PTP 5.5.2 "FIFO Interface state
// transitions": write commandReady, wait TIMEOUT_B until it reads set).
func (t *TIS) ready() error {
	t.Regs.Write32(t.reg(TPM_STS), STS_commandReady)
	return t.wait("commandReady", t.timeout(TIMEOUT_B), func() bool {
		s := t.sts()
		return s != 0xffffffff && s&STS_commandReady != 0
	})
}

// Cancel aborts an executing command (PTP 6.5.2.8 commandCancel) and returns
// the TPM to Ready.
func (t *TIS) cancel() error {
	t.Regs.Write32(t.reg(TPM_STS), STS_commandCancel)
	return t.ready()
}

// Send implements transport.TPM: it takes the locality, writes the command
// through the FIFO, starts it, polls for the response, reads it (header
// first, then the size it announces) and releases the locality.
func (t *TIS) Send(cmd []byte) ([]byte, error) {
	rsp, err := t.send(cmd)
	return rsp, t.withBus(err)
}

func (t *TIS) send(cmd []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.inited {
		return nil, errors.New("tis: Send before Init")
	}
	if len(cmd) < headerSize || int(binary.BigEndian.Uint32(cmd[2:6])) != len(cmd) {
		return nil, fmt.Errorf("%w: %d bytes", ErrCommandSize, len(cmd))
	}
	if err := t.requestLocality(); err != nil {
		return nil, err
	}
	defer t.releaseLocality()
	if err := t.ready(); err != nil {
		return nil, fmt.Errorf("tis: before command: %w", err)
	}
	if err := t.writeCommandChecked(cmd); err != nil {
		t.ready()
		return nil, err
	}
	t.Regs.Write32(t.reg(TPM_STS), STS_tpmGo)
	const done = STS_stsValid | STS_dataAvail
	err := t.wait("response (dataAvail)", t.CommandTimeout, func() bool {
		s := t.sts()
		return s != 0xffffffff && s&done == done
	})
	if err != nil {
		if cerr := t.cancel(); cerr != nil {
			t.Log.Warn("command cancel failed", "err", cerr)
		}
		return nil, fmt.Errorf("tis: command %#x: %w", binary.BigEndian.Uint32(cmd[6:10]), err)
	}
	rsp, err := t.readResponse()
	for i := 1; i < responseAttempts && retryable(err, rsp); i++ {
		// Re-read (PTP 6.5.2.8 responseRetry) in case bytes were lost or
		// corrupted on the bus; a TPM that keeps doing it is broken.
		t.Log.Warn("response retry", "err", err, "attempt", i)
		t.Regs.Write32(t.reg(TPM_STS), STS_responseRetry)
		rsp, err = t.readResponse()
	}
	if rerr := t.ready(); rerr != nil && err == nil {
		err = fmt.Errorf("tis: after response: %w", rerr)
	}
	if err != nil {
		return nil, err
	}
	return rsp, nil
}

func retryable(err error, rsp []byte) bool {
	return errors.Is(err, ErrTruncated) || errors.Is(err, ErrChecksum) ||
		errors.Is(err, ErrResponseTooLarge) && rsp != nil
}

// writeCommandChecked writes cmd and, when the transport has a data
// checksum, verifies it before tpmGo; on a mismatch it returns the TPM to
// Ready (discarding the command) and writes it again, responseAttempts
// writes at most.
func (t *TIS) writeCommandChecked(cmd []byte) error {
	c, ok := t.Regs.(Checksummer)
	for i := 1; ; i++ {
		if err := t.writeCommand(cmd); err != nil {
			return err
		}
		if !ok {
			return nil
		}
		err := c.VerifyChecksum(cmd)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrChecksum) || i >= responseAttempts {
			return fmt.Errorf("tis: command: %w", err)
		}
		t.Log.Warn("command rewrite", "err", err, "attempt", i)
		if err := t.ready(); err != nil {
			return fmt.Errorf("tis: command rewrite: %w", err)
		}
	}
}

// writeCommand writes cmd in bursts. All bytes but the last go in bursts of
// at most burstCount; the TPM must keep Expect set until the last byte and
// clear it after (PTP 5.5.2.2 "Command Send").
func (t *TIS) writeCommand(cmd []byte) error {
	fifo := t.reg(TPM_DATA_FIFO)
	n := 0
	for n < len(cmd)-1 {
		burst, err := t.waitBurst()
		if err != nil {
			return fmt.Errorf("tis: write command byte %d: %w", n, err)
		}
		k := min(burst, len(cmd)-1-n)
		if f, ok := t.Regs.(FIFO); ok {
			if err := f.WriteFIFO(fifo, cmd[n:n+k]); err != nil {
				return fmt.Errorf("tis: write command byte %d: %w", n, err)
			}
		} else {
			for _, b := range cmd[n : n+k] {
				t.Regs.Write8(fifo, b)
			}
		}
		n += k
		s, err := t.waitValid()
		if err != nil {
			return fmt.Errorf("tis: write command byte %d: %w", n, err)
		}
		if s&STS_Expect == 0 {
			return fmt.Errorf("%w: TPM expects no more command bytes after %d of %d", ErrProtocol, n, len(cmd))
		}
	}
	if _, err := t.waitBurst(); err != nil {
		return fmt.Errorf("tis: write last command byte: %w", err)
	}
	t.Regs.Write8(fifo, cmd[n])
	s, err := t.waitValid()
	if err != nil {
		return fmt.Errorf("tis: after command: %w", err)
	}
	if s&STS_Expect != 0 {
		return fmt.Errorf("%w: TPM expects more than %d command bytes", ErrProtocol, len(cmd))
	}
	return nil
}

// readN reads len(buf) response bytes in bursts.
func (t *TIS) readN(buf []byte, at int) error {
	fifo := t.reg(TPM_DATA_FIFO)
	n := 0
	for n < len(buf) {
		s, err := t.waitValid()
		if err != nil {
			return fmt.Errorf("tis: read response byte %d: %w", at+n, err)
		}
		if s&STS_dataAvail == 0 {
			return fmt.Errorf("%w: no data after %d bytes", ErrTruncated, at+n)
		}
		burst, err := t.waitBurst()
		if err != nil {
			return fmt.Errorf("tis: read response byte %d: %w", at+n, err)
		}
		k := min(burst, len(buf)-n)
		if f, ok := t.Regs.(FIFO); ok {
			if err := f.ReadFIFO(fifo, buf[n:n+k]); err != nil {
				return fmt.Errorf("tis: read response byte %d: %w", at+n, err)
			}
		} else {
			for i := range buf[n : n+k] {
				buf[n+i] = t.Regs.Read8(fifo)
			}
		}
		n += k
	}
	return nil
}

// readResponse reads the 10-byte header, then the rest of the size it
// announces, then checks the TPM has nothing more (PTP 5.5.2.3 "Response").
// It returns a non-nil slice with ErrResponseTooLarge when a response was
// read but trailing data remains.
func (t *TIS) readResponse() ([]byte, error) {
	hdr := make([]byte, headerSize)
	if err := t.readN(hdr, 0); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint32(hdr[2:6]))
	if size < headerSize {
		return nil, fmt.Errorf("%w: header announces %d bytes", ErrTruncated, size)
	}
	if size > t.MaxResponse {
		return nil, fmt.Errorf("%w: header announces %d bytes, limit %d", ErrResponseTooLarge, size, t.MaxResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if err := t.readN(rsp[headerSize:], headerSize); err != nil {
		return nil, err
	}
	s, err := t.waitValid()
	if err != nil {
		return nil, fmt.Errorf("tis: after response: %w", err)
	}
	if s&STS_dataAvail != 0 {
		return rsp, fmt.Errorf("%w: TPM has data beyond the %d bytes its header announces", ErrResponseTooLarge, size)
	}
	if c, ok := t.Regs.(Checksummer); ok {
		if err := c.VerifyChecksum(rsp); err != nil {
			return nil, fmt.Errorf("tis: response: %w", err)
		}
	}
	return rsp, nil
}
