package tis

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2/transport"
)

// tisModel is a register model of the PTP FIFO interface (localities 0-4,
// one active at a time, each with its register page (PTP 6.5.2); states
// Idle, Ready, Reception, Execution, Completion per PTP 5.5.2). Each
// complete command is forwarded to backend, a real TPM (swtpm). Its fault
// knobs are for fault injection only. Writes to the STS or FIFO of a
// locality that is not active are ignored, as a TPM does, and recorded in
// ignored: a driver that makes one has lost track of its locality.
type tisModel struct {
	mu      sync.Mutex
	backend transport.TPM
	didVID  uint32

	active  bool
	loc     uint32 // the active locality, when active
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
	refuse      uint8               // localities (bit n: locality n) never granted
	execErr     error

	execLoc []uint32 // the locality each command executed at
	ignored []string // writes to a locality that was not active
}

// split returns an offset's locality and register (PTP 6.5.2: one 4 KiB
// page per locality).
func split(off uint32) (loc, reg uint32) { return off / LocalityStride, off % LocalityStride }

func (m *tisModel) activeAt(loc uint32) bool { return m.active && m.loc == loc }

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
	loc, reg := split(off)
	switch reg {
	case TPM_ACCESS:
		return m.Read8Locked(off)
	case TPM_DATA_FIFO:
		if !m.activeAt(loc) || m.state != stCompletion || m.pos >= len(m.rsp) {
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
	loc, reg := split(off)
	switch reg {
	case TPM_DID_VID:
		return m.didVID
	case TPM_STS:
		if !m.activeAt(loc) {
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
	if loc, reg := split(off); reg == TPM_ACCESS {
		v := uint8(ACCESS_tpmRegValidSts | ACCESS_tpmEstablishment)
		if m.activeAt(loc) {
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
	loc, reg := split(off)
	switch reg {
	case TPM_ACCESS:
		// requestUse is granted when no locality is active (PTP 6.5.2.3;
		// a request while another is active would stay pending: the
		// driver never makes one); writing activeLocality relinquishes.
		if v&ACCESS_requestUse != 0 && !m.neverGrant && m.refuse&(1<<loc) == 0 && !m.active {
			m.active, m.loc = true, loc
		}
		if v&ACCESS_activeLocality != 0 && m.activeAt(loc) {
			m.active = false
		}
	case TPM_DATA_FIFO:
		if !m.activeAt(loc) {
			m.ignored = append(m.ignored, fmt.Sprintf("FIFO write at locality %d (active: %v %d)", loc, m.active, m.loc))
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
	loc, reg := split(off)
	if reg != TPM_STS {
		m.Write8(off, uint8(v))
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone() {
		return
	}
	if !m.activeAt(loc) {
		m.ignored = append(m.ignored, fmt.Sprintf("STS write %#x at locality %d (active: %v %d)", v, loc, m.active, m.loc))
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
		m.execLoc = append(m.execLoc, m.loc)
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
