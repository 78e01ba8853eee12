package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// ErrTPMFault: the stick's TPM stopped answering (a transport failure, or
// TPM_RC_FAILURE / TPM_RC_INITIALIZE). The fault lasts until reboot.
var ErrTPMFault = errors.New("TPM fault")

// Format-zero response codes that mean the TPM cannot be trusted with the
// stick's state any more (TPM 2.0 Part 2, 6.6.3 "TPM_RC"): TPM_RC_FAILURE
// is a TPM in failure mode (and what QEMU's tpm-emulator backend answers
// when swtpm is gone); TPM_RC_INITIALIZE after boot means the TPM was
// reset and its PCRs are gone.
const (
	rcInitialize = 0x100
	rcFailure    = 0x101
)

// A TPM 2.0 answers TPM 2.0 commands with TPM_ST_NO_SESSIONS or
// TPM_ST_SESSIONS (TPM 2.0 Part 1, 18.8). QEMU's TPM backends answer a
// command they could not deliver with a TPM 1.2 header instead
// (tpm_util_write_fatal_error_response: TPM_TAG_RSP_COMMAND, TPM_FAIL):
// that is what the stick's TIS reads once swtpm is gone.
const (
	stNoSessions = 0x8001
	stSessions   = 0x8002
)

// DefaultTPMProbeInterval is how often a stick with a TPM probes it when
// nothing else talks to it.
const DefaultTPMProbeInterval = 10 * time.Second

// tpmMonitor is the stick's TPM as the core uses it: every command goes
// through it, and the first one that fails on the transport, or that the
// TPM answers with TPM_RC_FAILURE or TPM_RC_INITIALIZE, marks the TPM
// faulty for good. A TPM that stopped answering once may have been reset
// (its PCRs zeroed), and the stick cannot tell a reset from a hiccup
// without the TPM: it fails closed until reboot.
type tpmMonitor struct {
	tpm    transport.TPM
	uptime func() time.Duration
	// onFault is called once, with the fault, when it is first marked.
	onFault func(error)

	mu      sync.Mutex
	fault   error
	faultAt time.Duration

	probeMu sync.Mutex
	probing chan struct{} // closed when the probe running ends; nil when none
}

var _ transport.TPM = (*tpmMonitor)(nil)

// Send implements transport.TPM.
func (m *tpmMonitor) Send(cmd []byte) ([]byte, error) {
	if err := m.Fault(); err != nil {
		return nil, err
	}
	var cc uint32
	if len(cmd) >= 10 {
		cc = binary.BigEndian.Uint32(cmd[6:10])
	}
	rsp, err := m.tpm.Send(cmd)
	if err != nil {
		return nil, m.mark(fmt.Errorf("command %#x: %w", cc, err))
	}
	if len(rsp) < 10 {
		return nil, m.mark(fmt.Errorf("command %#x: %d-byte response", cc, len(rsp)))
	}
	tag, rc := binary.BigEndian.Uint16(rsp[0:2]), binary.BigEndian.Uint32(rsp[6:10])
	switch {
	case tag != stNoSessions && tag != stSessions:
		return nil, m.mark(fmt.Errorf("command %#x: answered with tag %#04x and code %#x, not a TPM 2.0 response (QEMU answers so when its TPM backend is gone)", cc, tag, rc))
	case rc == rcFailure || rc == rcInitialize:
		m.mark(fmt.Errorf("command %#x: %w", cc, tpm2.TPMRC(rc)))
	}
	return rsp, nil
}

// mark records the first fault and returns the fault error.
func (m *tpmMonitor) mark(why error) error {
	m.mu.Lock()
	first := m.fault == nil
	if first {
		m.fault = fmt.Errorf("%w: the stick's TPM stopped answering: %w", ErrTPMFault, why)
		m.faultAt = m.uptime()
	}
	err := m.fault
	m.mu.Unlock()
	if first && m.onFault != nil {
		m.onFault(err)
	}
	return err
}

// Fault returns the TPM's fault (wrapping ErrTPMFault), or nil while it
// answers.
func (m *tpmMonitor) Fault() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fault
}

// faultUptime is the uptime at which the fault was marked.
func (m *tpmMonitor) faultUptime() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.faultAt
}

// ProbeWait is how long a status request waits for the TPM to answer its
// probe. A TPM that hangs is bounded by its driver's timeouts (the TIS
// driver's command timeout is minutes, for RSA key generation on discrete
// TPMs); the status does not wait that long.
const ProbeWait = 2 * time.Second

// ErrTPMSlow: the TPM has not answered a probe within ProbeWait. Unlike a
// fault it does not last: the next status probes again.
var ErrTPMSlow = errors.New("TPM not answering")

// Probe sends TPM2_ReadClock, a command without side effects that a TPM in
// failure mode refuses (TPM 2.0 Part 3, 29.4; unlike GetCapability and
// GetTestResult, which a failed TPM still answers), and returns the fault,
// if any, or ErrTPMSlow when no answer came within wait. Callers that
// arrive while a probe runs share it, so a burst of status requests costs
// one TPM command.
func (m *tpmMonitor) Probe(wait time.Duration) error {
	if err := m.Fault(); err != nil {
		return err
	}
	m.probeMu.Lock()
	done := m.probing
	if done == nil {
		done = make(chan struct{})
		m.probing = done
		go func() {
			m.probe()
			m.probeMu.Lock()
			m.probing = nil
			m.probeMu.Unlock()
			close(done)
		}()
	}
	m.probeMu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return m.Fault()
	case <-t.C:
		return fmt.Errorf("%w: no answer to TPM2_ReadClock within %v (still waiting)", ErrTPMSlow, wait)
	}
}

// probe sends one TPM2_ReadClock and marks a fault if the TPM refuses it.
func (m *tpmMonitor) probe() {
	_, err := (tpm2.ReadClock{}).Execute(m)
	var rc tpm2.TPMRC
	switch {
	case err == nil, m.Fault() != nil:
	case errors.As(err, &rc) && rc.IsWarning():
		// TPM_RC_RETRY, TPM_RC_YIELDED and the like: busy, not gone.
	default:
		// TPM2_ReadClock has no handles, no authorization and no
		// parameters: a TPM that refuses it does not work.
		m.mark(fmt.Errorf("probe: TPM2_ReadClock: %w", err))
	}
}

// run probes every interval until stop is closed.
func (m *tpmMonitor) run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if errors.Is(m.Probe(interval), ErrTPMFault) {
				return // the fault is for good: nothing left to watch
			}
		}
	}
}
