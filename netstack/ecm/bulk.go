package ecm

import (
	"encoding/binary"
	"fmt"
)

// bitRate is what CONNECTION_SPEED_CHANGE announces both ways: the most a
// high-speed bulk endpoint can carry, 13 packets of 512 bytes per 125 µs
// microframe (USB 2.0 §5.8.4, Table 5-10), 425.984 Mbit/s.
const bitRate = 13 * MaxPacket * 8 * 8000

// notification codes (CDC 1.2 §6.3, Table 20; ECM 1.2 §6.3).
const (
	notifyNetworkConnection     = 0x00 // ECM 1.2 §6.3.1
	notifyConnectionSpeedChange = 0x2a // ECM 1.2 §6.3.3
	notifyRequestType           = 0xa1 // device to host, class, interface
	maxNotes                    = 8
)

func networkConnection(up bool) []byte {
	b := []byte{notifyRequestType, notifyNetworkConnection, 0, 0, ifaceComm, 0, 0, 0}
	if up {
		b[2] = 1
	}
	return b
}

func connectionSpeedChange(down, up uint32) []byte {
	b := []byte{notifyRequestType, notifyConnectionSpeedChange, 0, 0, ifaceComm, 0, 8, 0,
		0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[8:], down)
	binary.LittleEndian.PutUint32(b[12:], up)
	return b
}

func (f *Function) notify(n []byte) {
	if len(f.notes) >= maxNotes {
		f.notes = f.notes[1:]
	}
	f.notes = append(f.notes, n)
}

// Notification returns the next notification for the interrupt IN
// endpoint EPNotify (one transfer of at most NotifyMaxPacket bytes), or
// nil when there is none.
func (f *Function) Notification() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.config == 0 || f.halted[0] || len(f.notes) == 0 {
		return nil
	}
	n := f.notes[0]
	f.notes = f.notes[1:]
	return n
}

// BulkOut takes one packet the host sent on EPBulkOut. A packet shorter
// than MaxPacket (a zero-length one too) ends the frame in progress. It
// returns ErrNAK, without taking the packet, while the receive queue is
// full (the controller NAKs it and the host sends it again: USB's flow
// control, USB 2.0 §8.5.1), and ErrStall when the endpoint does not exist in the current state
// or is halted: the controller stalls it. Whatever the packets hold, the
// function only counts and drops what it cannot use.
func (f *Function) BulkOut(pkt []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected() || f.halted[2] {
		return fmt.Errorf("%w: bulk OUT while not in altsetting 1 or halted", ErrStall)
	}
	if len(f.rx) >= f.cfg.Queue {
		return ErrNAK
	}
	if len(pkt) > MaxPacket {
		// a controller lets no such packet through (babble, USB 2.0
		// §8.4.2.3): the frame's boundaries are lost with it
		f.stats.Babble++
		f.rxPartial, f.rxDiscard = nil, false
		return nil
	}
	if !f.rxDiscard {
		if len(f.rxPartial)+len(pkt) > MaxFrame {
			f.stats.Oversize++
			f.rxPartial, f.rxDiscard = nil, true
		} else {
			f.rxPartial = append(f.rxPartial, pkt...)
		}
	}
	if len(pkt) == MaxPacket {
		return nil
	}
	frame, discard := f.rxPartial, f.rxDiscard
	f.rxPartial, f.rxDiscard = nil, false
	if !discard && len(frame) > 0 { // a lone zero-length packet carries nothing
		f.deliver(frame)
	}
	return nil
}

// BulkOutTransfer takes one completed bulk OUT transfer from a controller
// that reassembles packets itself: one frame, possibly with the host's
// pad byte.
func (f *Function) BulkOutTransfer(t []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected() || f.halted[2] {
		return fmt.Errorf("%w: bulk OUT while not in altsetting 1 or halted", ErrStall)
	}
	if len(t) > MaxFrame {
		f.stats.Oversize++
		return nil
	}
	if len(t) > 0 {
		f.deliver(append([]byte(nil), t...))
	}
	return nil
}

// OutReady reports whether the receive queue has room for a frame: a
// controller that reassembles transfers itself primes its next bulk OUT
// transfer only then, so that the hardware NAKs the host meanwhile.
func (f *Function) OutReady() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rx) < f.cfg.Queue
}

func (f *Function) deliver(frame []byte) {
	switch {
	case len(frame) < minFrame:
		f.stats.Runts++
	case len(f.rx) >= f.cfg.Queue:
		f.stats.RxDropped++
	default:
		f.rx = append(f.rx, frame)
		f.stats.RxFrames++
		f.stats.RxBytes += uint64(len(frame))
	}
}

// BulkIn returns the next packet for EPBulkIn: at most MaxPacket bytes of
// the frame being sent, an empty non-nil slice for the zero-length packet
// that ends a frame of a multiple of MaxPacket bytes (CDC ECM 1.2 §3.3.1),
// or nil when there is nothing to send. The slice is valid until the next
// call.
func (f *Function) BulkIn() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected() || f.halted[1] {
		return nil
	}
	if f.txCur == nil {
		if f.txZLP {
			f.txZLP = false
			return []byte{}
		}
		if len(f.tx) == 0 {
			return nil
		}
		f.txCur, f.txOff = f.tx[0], 0
		f.tx = f.tx[1:]
	}
	n := min(MaxPacket, len(f.txCur)-f.txOff)
	p := f.txCur[f.txOff : f.txOff+n]
	f.txOff += n
	if f.txOff == len(f.txCur) {
		f.stats.TxFrames++
		f.stats.TxBytes += uint64(len(f.txCur))
		f.txCur, f.txOff = nil, 0
		f.txZLP = n == MaxPacket
	}
	return p
}

// BulkInTransfer returns the next whole frame for EPBulkIn, for a
// controller that splits a transfer into packets itself and ends one of a
// multiple of MaxPacket bytes with a zero-length packet (on the i.MX6:
// zero-length termination enabled in the endpoint's queue head). nil: none.
func (f *Function) BulkInTransfer() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected() || f.halted[1] {
		return nil
	}
	var t []byte
	switch {
	case f.txCur != nil: // the packet-level path was half way through
		t = f.txCur[f.txOff:]
		f.stats.TxBytes += uint64(len(f.txCur))
		f.txCur, f.txOff = nil, 0
	case len(f.tx) > 0:
		t = f.tx[0]
		f.tx = f.tx[1:]
		f.stats.TxBytes += uint64(len(t))
	default:
		return nil
	}
	f.txZLP = false
	f.stats.TxFrames++
	return t
}

// MAC is the stick's address on the link (netstack.NIC).
func (f *Function) MAC() [6]byte { return f.cfg.StickMAC }

// Transmit queues a frame from the stack for the host (netstack.NIC). A
// frame over MaxFrame or under 14 bytes is refused (ErrOversize, ErrRunt)
// and counted; while disconnected, or when the host's packet filter
// excludes it, it is dropped and counted; a full queue returns ErrBusy.
func (f *Function) Transmit(frame []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case len(frame) > MaxFrame:
		f.stats.Oversize++
		return fmt.Errorf("%w: %d bytes", ErrOversize, len(frame))
	case len(frame) < minFrame:
		f.stats.Runts++
		return fmt.Errorf("%w: %d bytes", ErrRunt, len(frame))
	case !f.connected():
		f.stats.TxDropped++
		return nil
	case !f.passes(frame):
		f.stats.Filtered++
		return nil
	case len(f.tx) >= f.cfg.Queue:
		return ErrBusy
	}
	f.tx = append(f.tx, append([]byte(nil), frame...))
	return nil
}

// passes applies the host's packet filter (ECM 1.2 §6.2.4) to a frame's
// destination. With no multicast filters (wNumberMCFilters 0) MULTICAST
// passes all multicast, as ALL_MULTICAST does.
func (f *Function) passes(frame []byte) bool {
	var dst [6]byte
	copy(dst[:], frame)
	switch {
	case f.filter&FilterPromiscuous != 0:
		return true
	case dst == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		return f.filter&FilterBroadcast != 0
	case dst[0]&1 != 0:
		return f.filter&(FilterAllMulticast|FilterMulticast) != 0
	default:
		return f.filter&FilterDirected != 0 && dst == f.cfg.HostMAC
	}
}

// Receive takes the next frame the host sent (netstack.NIC); it does not
// block. A frame larger than buf is dropped with ErrShortBuffer.
func (f *Function) Receive(buf []byte) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rx) == 0 {
		return 0, false, nil
	}
	frame := f.rx[0]
	f.rx[0] = nil
	f.rx = f.rx[1:]
	if len(buf) < len(frame) {
		return 0, false, fmt.Errorf("%w: %d bytes for a frame of %d", ErrShortBuffer, len(buf), len(frame))
	}
	return copy(buf, frame), true, nil
}

func (f *Function) rxPartialDiscard() {
	if len(f.rxPartial) > 0 {
		f.stats.Aborted++
	}
	f.rxPartial, f.rxDiscard = nil, false
}
