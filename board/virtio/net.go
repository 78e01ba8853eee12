package virtio

import (
	"encoding/binary"
	"sync"
)

// Network device feature bits (spec 5.1.3).
const (
	NetFeatureMAC    = uint64(1) << 5
	NetFeatureStatus = uint64(1) << 16
)

// Network device queues (spec 5.1.2) and configuration layout (5.1.4).
const (
	netReceiveQ  = 0
	netTransmitQ = 1

	netConfigMAC    = Config + 0
	netConfigStatus = Config + 6
	netStatusLinkUp = 1
)

// NetHeaderSize is the size of struct virtio_net_hdr with VIRTIO_F_VERSION_1
// (spec 5.1.6: the num_buffers field is always present).
const NetHeaderSize = 12

// NetLegacyHeaderSize is its size on a legacy device without
// VIRTIO_NET_F_MRG_RXBUF, which the driver never negotiates (spec 5.1.6,
// "Legacy Interface: Device Operation": num_buffers is absent).
const NetLegacyHeaderSize = 10

// MaxFrame is the largest Ethernet frame (without FCS) the driver
// exchanges: 1500 bytes of payload, 14 of header and 4 of VLAN tag.
const MaxFrame = 1518

// NetBufferSize is the size of each receive and transmit buffer (the
// larger header's).
const NetBufferSize = NetHeaderSize + MaxFrame

// Errors of the network device.
const (
	ErrFrameSize = Error("virtio-net: frame larger than MaxFrame")
	ErrTxBusy    = Error("virtio-net: transmit queue full")
	ErrNoMAC     = Error("virtio-net: device has no MAC address")
	// ErrNoAnyLayout: a legacy device that does not offer
	// VIRTIO_F_ANY_LAYOUT wants the header in a descriptor of its own
	// (spec 5.1.6.2 and 5.1.6.3, legacy notes); the driver sends header
	// and frame in one.
	ErrNoAnyLayout = Error("virtio-net: legacy device without VIRTIO_F_ANY_LAYOUT")
)

// Net drives a network device (spec 5.1) without offloads: no checksum or
// segmentation features are negotiated, so every header is zero on transmit
// and ignored on receive. Buffers are single descriptors of NetBufferSize
// bytes carved from one DMA region.
//
// The device is not trusted with the rings (see Queue.Used): a used element
// with a bad length gives its buffer back all the same (re-posted for
// receive, free again for transmit) and is counted; one that names no
// buffer the device holds, or a used index that runs ahead, is counted and
// resets the device (spec 2.4), which gives every buffer back, since the
// driver cannot tell which buffer the device meant.
//
// Receive and Transmit may be called from two goroutines (the network
// stack's pump and its transmitter): a reset touches both queues, so they
// take a lock.
type Net struct {
	Transport Transport

	mu       sync.Mutex
	rx, tx   Queue
	ringMem  []byte
	ringAddr uint64
	ring     int
	size     uint16
	mem      []byte
	memAddr  uint64
	rxBufs   int
	txBufs   int
	txFree   [MaxQueue]int
	ntxFree  int
	rxSlotOf [MaxQueue]int
	txSlotOf [MaxQueue]int

	mac [6]byte
	// hdr is the virtio-net header's size for the transport in use
	hdr int

	// counters; RxErrors and TxErrors include malformed used elements,
	// Resets the device resets they caused
	RxFrames, TxFrames, RxErrors, TxErrors, Resets uint64
}

// Busy reports a transient refusal: the transmit ring is full, try again
// once the device has sent something.
func (e Error) Busy() bool { return e == ErrTxBusy }

// NetMemory returns the DMA memory a Net with queues of size entries needs
// for its rings and buffers, on either transport: each ring takes whole
// legacy pages (LegacyQueueBytes rounded up to LegacyPageSize), so both
// start on a page boundary when mem does.
func NetMemory(size uint16) int {
	return 2*netRingBytes(size) + 2*int(size)*NetBufferSize
}

func netRingBytes(size uint16) int {
	return (LegacyQueueBytes(size) + LegacyPageSize - 1) &^ (LegacyPageSize - 1)
}

// Init brings up the network device behind regs, with queues of size
// entries; mem (physical address addr) holds both rings and every buffer
// and must be NetMemory(size) bytes, 16-byte aligned for a version 2
// device, LegacyPageSize aligned for a legacy one.
func (n *Net) Init(regs Registers, mem []byte, addr uint64, size uint16) error {
	n.Transport.Regs = regs
	if id, _, err := Probe(regs); err != nil {
		return err
	} else if id != IDNetwork {
		return ErrNoDevice
	}
	if size == 0 || size > MaxQueue {
		return ErrQueueSize
	}
	if len(mem) < NetMemory(size) || addr%queueAlign != 0 {
		return ErrMemory
	}
	n.ring = netRingBytes(size)
	n.ringMem, n.ringAddr = mem[:2*n.ring], addr
	n.mem, n.memAddr = mem[2*n.ring:NetMemory(size):NetMemory(size)], addr+uint64(2*n.ring)
	n.size = size
	n.rxBufs, n.txBufs = int(size), int(size)
	if err := n.bringUp(); err != nil {
		return err
	}
	n.mac = readMAC(regs)
	return nil
}

// bringUp (re)initialises the device: both queues empty, every receive
// buffer posted, every transmit buffer free.
func (n *Net) bringUp() error {
	// VIRTIO_F_ANY_LAYOUT is a legacy bit (a version 2 device always
	// behaves so, spec 2.6.4); Transport.Init offers a legacy device only
	// the low 32 bits of want, and a version 2 one is not asked for it.
	want := NetFeatureMAC | NetFeatureStatus
	if n.Transport.Regs.Read32(Version) == 1 {
		want |= FeatureAnyLayout
	}
	if err := n.Transport.Init(want); err != nil {
		return err
	}
	if n.Transport.Features&NetFeatureMAC == 0 {
		n.Transport.Regs.Write32(Status, StatusFailed)
		return ErrNoMAC
	}
	n.hdr = NetHeaderSize
	if n.Transport.Legacy {
		if n.Transport.Features&FeatureAnyLayout == 0 {
			n.Transport.Regs.Write32(Status, StatusFailed)
			return ErrNoAnyLayout
		}
		n.hdr = NetLegacyHeaderSize
	}
	if err := n.Transport.InitQueue(&n.rx, n.ringMem[:n.ring], n.ringAddr, n.size); err != nil {
		return err
	}
	if err := n.Transport.InitQueue(&n.tx, n.ringMem[n.ring:2*n.ring], n.ringAddr+uint64(n.ring), n.size); err != nil {
		return err
	}
	if err := n.Transport.SetupQueue(netReceiveQ, &n.rx); err != nil {
		return err
	}
	if err := n.Transport.SetupQueue(netTransmitQ, &n.tx); err != nil {
		return err
	}
	n.ntxFree = 0
	for i := 0; i < n.txBufs; i++ {
		n.txFree[n.ntxFree] = i
		n.ntxFree++
	}
	n.Transport.Ready()
	for i := 0; i < n.rxBufs; i++ {
		if err := n.postRx(i); err != nil {
			return err
		}
	}
	n.rx.Notify()
	return nil
}

// reset resets the device after it broke the ring protocol, and returns
// cause (or why the device could not be brought up again).
func (n *Net) reset(cause error) error {
	n.Resets++
	if err := n.bringUp(); err != nil {
		return err
	}
	return cause
}

// MAC returns the device's Ethernet address.
func (n *Net) MAC() [6]byte { return n.mac }

// LinkUp reports the link state (always up when the device does not report
// it).
func (n *Net) LinkUp() bool {
	if n.Transport.Features&NetFeatureStatus == 0 {
		return true
	}
	return readConfig16(n.Transport.Regs, netConfigStatus)&netStatusLinkUp != 0
}

// ConfigRegisters is the narrow access the device configuration space asks
// for: 8-bit fields with 8-bit accesses, 16-bit fields with aligned 16-bit
// accesses (spec 4.2.2.2). Register windows that offer it are used so;
// others fall back to aligned 32-bit reads, which QEMU also accepts.
type ConfigRegisters interface {
	Read8(off uint32) uint8
	Read16(off uint32) uint16
}

func readMAC(r Registers) (mac [6]byte) {
	if c, ok := r.(ConfigRegisters); ok {
		for i := range mac {
			mac[i] = c.Read8(netConfigMAC + uint32(i))
		}
		return mac
	}
	var w [8]byte
	binary.LittleEndian.PutUint32(w[0:], r.Read32(netConfigMAC))
	binary.LittleEndian.PutUint32(w[4:], r.Read32(netConfigMAC+4))
	copy(mac[:], w[:6])
	return mac
}

func readConfig16(r Registers, off uint32) uint16 {
	if c, ok := r.(ConfigRegisters); ok {
		return c.Read16(off)
	}
	return uint16(r.Read32(off&^3) >> (8 * (off & 3)))
}

// rxBuf and txBuf return a buffer capped at its own length: no length can
// reach the next buffer through it.
func (n *Net) rxBuf(slot int) ([]byte, uint64) {
	off := slot * NetBufferSize
	return n.mem[off : off+NetBufferSize : off+NetBufferSize], n.memAddr + uint64(off)
}

func (n *Net) txBuf(slot int) ([]byte, uint64) {
	off := (n.rxBufs + slot) * NetBufferSize
	return n.mem[off : off+NetBufferSize : off+NetBufferSize], n.memAddr + uint64(off)
}

func (n *Net) postRx(slot int) error {
	_, addr := n.rxBuf(slot)
	id, err := n.rx.Post(addr, NetBufferSize, true)
	if err != nil {
		return err
	}
	n.rxSlotOf[id] = slot
	return nil
}

// Receive copies the next received frame into frame and returns its length;
// ok is false when nothing has arrived. The buffer goes straight back to the
// device. A frame longer than frame is dropped and counted. A malformed used
// element is counted and reported as an error (ErrUsedLength, ErrBadUsed);
// the receive buffers stay posted. One call looks at no more than a ring's
// worth of elements.
func (n *Net) Receive(frame []byte) (length int, ok bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for range n.rx.Size() {
		id, written, got, err := n.rx.Used()
		if !got {
			return 0, false, nil
		}
		if err == ErrBadUsed {
			n.RxErrors++
			return 0, false, n.reset(err)
		}
		// err is nil or ErrUsedLength (written 0): either way buffer id
		// is back, and written is within it
		slot := n.rxSlotOf[id]
		buf, _ := n.rxBuf(slot)
		var l int
		valid := err == nil && int(written) >= n.hdr && int(written)-n.hdr <= len(frame)
		if valid {
			l = copy(frame, buf[n.hdr:written])
		}
		if perr := n.postRx(slot); perr != nil {
			return 0, false, perr
		}
		n.rx.Notify()
		if !valid {
			n.RxErrors++
			if err != nil {
				return 0, false, err
			}
			continue
		}
		n.RxFrames++
		return l, true, nil
	}
	return 0, false, nil
}

// reclaim takes back transmit buffers the device has sent. It fails only
// when a reset fails.
func (n *Net) reclaim() error {
	for range n.tx.Size() {
		id, _, got, err := n.tx.Used()
		if !got {
			return nil
		}
		if err == ErrBadUsed {
			n.TxErrors++
			return n.reset(nil)
		}
		if err != nil {
			// ErrUsedLength: a transmit buffer is device-readable, the
			// device writes nothing into it; the buffer is back all
			// the same
			n.TxErrors++
		}
		n.txFree[n.ntxFree] = n.txSlotOf[id]
		n.ntxFree++
	}
	return nil
}

// Transmit queues one Ethernet frame (without FCS) and notifies the device.
func (n *Net) Transmit(frame []byte) error {
	if len(frame) > MaxFrame {
		n.mu.Lock()
		n.TxErrors++
		n.mu.Unlock()
		return ErrFrameSize
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.reclaim(); err != nil {
		return err
	}
	if n.ntxFree == 0 {
		return ErrTxBusy
	}
	n.ntxFree--
	slot := n.txFree[n.ntxFree]
	buf, addr := n.txBuf(slot)
	// a zero header (with num_buffers 0 when present): no offloads
	clear(buf[:n.hdr])
	copy(buf[n.hdr:], frame)
	id, err := n.tx.Post(addr, uint32(n.hdr+len(frame)), false)
	if err != nil {
		n.txFree[n.ntxFree] = slot
		n.ntxFree++
		return err
	}
	n.txSlotOf[id] = slot
	n.tx.Notify()
	n.TxFrames++
	return nil
}
