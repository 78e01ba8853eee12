package tis

import (
	"encoding/binary"
	"sync"

	"github.com/google/go-tpm/tpm2/transport"
)

// tisModel is a register model of the PTP FIFO interface (one locality,
// states Idle, Ready, Reception, Execution, Completion per PTP 5.5.2). Each
// complete command is forwarded to backend, a real TPM (swtpm). Its fault
// knobs are for fault injection only.
type tisModel struct {
	mu      sync.Mutex
	backend transport.TPM
	didVID  uint32

	active  bool
	state   int
	cmd     []byte
	rsp     []byte
	pos     int
	cancels int

	// Fault knobs.
	burst       int                 // reported burst count (0: 4096)
	neverGrant  bool                // never grant the locality
	neverReady  bool                // never set commandReady
	neverDone   bool                // execution never completes
	lieBurst    int                 // added to the reported burst count while receiving
	vanishAfter int                 // all registers read 0 after this many FIFO writes (0: never)
	fifoWrites  int                 // FIFO writes seen
	sinceStatus int                 // FIFO writes since the last TPM_STS read
	mangle      func([]byte) []byte // rewrites each response
	execErr     error
}

const (
	stIdle = iota
	stReady
	stReception
	stExecution
	stCompletion
)

func newModel(backend transport.TPM) *tisModel {
	return &tisModel{backend: backend, didVID: 0x00011014}
}

var _ Registers = (*tisModel)(nil)

func (m *tisModel) gone() bool { return m.vanishAfter > 0 && m.fifoWrites >= m.vanishAfter }

func (m *tisModel) burstCount() uint32 {
	b := m.burst
	if b == 0 {
		b = 4096
	}
	switch m.state {
	case stReady, stReception:
		b += m.lieBurst
		return uint32(max(b, 0))
	case stCompletion:
		return uint32(min(b, len(m.rsp)-m.pos))
	}
	return 0
}

func (m *tisModel) expect() bool {
	if len(m.cmd) < 10 {
		return true
	}
	return len(m.cmd) < int(binary.BigEndian.Uint32(m.cmd[2:6]))
}

func (m *tisModel) Read8(off uint32) uint8 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone() {
		return 0
	}
	switch off {
	case TPM_ACCESS:
		v := uint8(ACCESS_tpmRegValidSts | ACCESS_tpmEstablishment)
		if m.active {
			v |= ACCESS_activeLocality
		}
		return v
	case TPM_DATA_FIFO:
		if m.state != stCompletion || m.pos >= len(m.rsp) {
			return 0xff
		}
		m.pos++
		return m.rsp[m.pos-1]
	case TPM_RID:
		return 1
	}
	return 0xff
}

func (m *tisModel) Read32(off uint32) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone() {
		return 0
	}
	switch off {
	case TPM_DID_VID:
		return m.didVID
	case TPM_STS:
		if !m.active {
			return 0xffffffff
		}
		m.sinceStatus = 0
		v := uint32(STS_stsValid | STS_tpmFamily_TPM20<<STS_tpmFamily_shift)
		v |= m.burstCount() << STS_burstCount_shift
		switch m.state {
		case stReady:
			if !m.neverReady {
				v |= STS_commandReady
			}
			v |= STS_Expect
		case stReception:
			if m.expect() {
				v |= STS_Expect
			}
		case stCompletion:
			if m.pos < len(m.rsp) {
				v |= STS_dataAvail
			}
		}
		return v
	}
	return uint32(m.Read8Locked(off))
}

// Read8Locked is Read8's value for 32-bit reads of 8-bit registers.
func (m *tisModel) Read8Locked(off uint32) uint8 {
	if off == TPM_ACCESS {
		v := uint8(ACCESS_tpmRegValidSts | ACCESS_tpmEstablishment)
		if m.active {
			v |= ACCESS_activeLocality
		}
		return v
	}
	return 0xff
}

func (m *tisModel) Write8(off uint32, v uint8) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone() {
		return
	}
	switch off {
	case TPM_ACCESS:
		if v&ACCESS_requestUse != 0 && !m.neverGrant {
			m.active = true
		}
		if v&ACCESS_activeLocality != 0 {
			m.active = false
		}
	case TPM_DATA_FIFO:
		if !m.active {
			return
		}
		m.fifoWrites++
		m.sinceStatus++
		if m.lieBurst > 0 && m.sinceStatus > m.burst {
			return // the real FIFO is full: the byte is lost
		}
		if m.state == stReady {
			m.state = stReception
			m.cmd = m.cmd[:0]
		}
		if m.state == stReception && m.expect() {
			m.cmd = append(m.cmd, v)
		}
	}
}

func (m *tisModel) Write32(off uint32, v uint32) {
	if off != TPM_STS {
		m.Write8(off, uint8(v))
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone() || !m.active {
		return
	}
	switch {
	case v&STS_commandCancel != 0:
		m.cancels++
		if m.state == stExecution {
			m.state = stReady
		}
	case v&STS_commandReady != 0:
		m.state = stReady
		m.cmd, m.rsp, m.pos = m.cmd[:0], nil, 0
	case v&STS_tpmGo != 0:
		if m.state != stReception || m.expect() {
			return
		}
		m.state = stExecution
		if m.neverDone {
			return
		}
		rsp, err := m.backend.Send(m.cmd)
		if err != nil {
			m.execErr = err
			return
		}
		if m.mangle != nil {
			rsp = m.mangle(rsp)
		}
		m.rsp, m.pos, m.state = rsp, 0, stCompletion
	case v&STS_responseRetry != 0:
		if m.state == stCompletion {
			m.pos = 0
		}
	}
}
