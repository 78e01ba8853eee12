package virtio

import (
	"encoding/binary"
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

// MaxFrame is the largest Ethernet frame (without FCS) the driver
// exchanges: 1500 bytes of payload, 14 of header and 4 of VLAN tag.
const MaxFrame = 1518

// NetBufferSize is the size of each receive and transmit buffer.
const NetBufferSize = NetHeaderSize + MaxFrame

// Errors of the network device.
const (
	ErrFrameSize = Error("virtio-net: frame larger than MaxFrame")
	ErrTxBusy    = Error("virtio-net: transmit queue full")
	ErrNoMAC     = Error("virtio-net: device has no MAC address")
)

// Net drives a network device (spec 5.1) without offloads: no checksum or
// segmentation features are negotiated, so every header is zero on transmit
// and ignored on receive. Buffers are single descriptors of NetBufferSize
// bytes carved from one DMA region.
//
// Net is not safe for concurrent use: one goroutine polls it (the network
// stack's link endpoint).
type Net struct {
	Transport Transport

	rx, tx   Queue
	mem      []byte
	memAddr  uint64
	rxBufs   int
	txBufs   int
	txFree   []int
	rxSlotOf [MaxQueue]int
	txSlotOf [MaxQueue]int

	mac [6]byte

	// counters
	RxFrames, TxFrames, RxErrors, TxErrors uint64
}

// Busy reports a transient refusal: the transmit ring is full, try again
// once the device has sent something.
func (e Error) Busy() bool { return e == ErrTxBusy }

// NetMemory returns the DMA memory a Net with queues of size entries needs
// for its rings and buffers.
func NetMemory(size uint16) int {
	ring := (QueueBytes(size) + queueAlign - 1) &^ (queueAlign - 1)
	return 2*ring + 2*int(size)*NetBufferSize
}

// Init brings up the network device behind regs, with queues of size
// entries; mem (physical address addr, 16-byte aligned) holds both rings and
// every buffer and must be NetMemory(size) bytes.
func (n *Net) Init(regs Registers, mem []byte, addr uint64, size uint16) error {
	n.Transport.Regs = regs
	if id, _, err := Probe(regs); err != nil {
		return err
	} else if id != IDNetwork {
		return ErrNoDevice
	}
	if len(mem) < NetMemory(size) || addr%queueAlign != 0 {
		return ErrMemory
	}
	if err := n.Transport.Init(NetFeatureMAC | NetFeatureStatus); err != nil {
		return err
	}
	if n.Transport.Features&NetFeatureMAC == 0 {
		n.Transport.Regs.Write32(Status, StatusFailed)
		return ErrNoMAC
	}
	ring := (QueueBytes(size) + queueAlign - 1) &^ (queueAlign - 1)
	if err := n.rx.Init(mem[:ring], addr, size); err != nil {
		return err
	}
	if err := n.tx.Init(mem[ring:2*ring], addr+uint64(ring), size); err != nil {
		return err
	}
	if err := n.Transport.SetupQueue(netReceiveQ, &n.rx); err != nil {
		return err
	}
	if err := n.Transport.SetupQueue(netTransmitQ, &n.tx); err != nil {
		return err
	}
	n.mem, n.memAddr = mem[2*ring:], addr+uint64(2*ring)
	n.rxBufs, n.txBufs = int(size), int(size)
	n.mac = readMAC(regs)
	n.txFree = n.txFree[:0]
	for i := 0; i < n.txBufs; i++ {
		n.txFree = append(n.txFree, i)
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

func (n *Net) rxBuf(slot int) ([]byte, uint64) {
	off := slot * NetBufferSize
	return n.mem[off : off+NetBufferSize], n.memAddr + uint64(off)
}

func (n *Net) txBuf(slot int) ([]byte, uint64) {
	off := (n.rxBufs + slot) * NetBufferSize
	return n.mem[off : off+NetBufferSize], n.memAddr + uint64(off)
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
// device. A frame longer than frame is dropped and counted.
func (n *Net) Receive(frame []byte) (length int, ok bool, err error) {
	for {
		id, written, got, err := n.rx.Used()
		if !got {
			return 0, false, nil
		}
		if err != nil {
			n.RxErrors++
			return 0, false, err
		}
		slot := n.rxSlotOf[id]
		buf, _ := n.rxBuf(slot)
		var l int
		valid := written >= NetHeaderSize && int(written)-NetHeaderSize <= len(frame)
		if valid {
			l = copy(frame, buf[NetHeaderSize:written])
		}
		if err := n.postRx(slot); err != nil {
			return 0, false, err
		}
		n.rx.Notify()
		if !valid {
			n.RxErrors++
			continue
		}
		n.RxFrames++
		return l, true, nil
	}
}

// reclaim takes back transmit buffers the device has sent.
func (n *Net) reclaim() error {
	for {
		id, _, got, err := n.tx.Used()
		if !got {
			return nil
		}
		if err != nil {
			n.TxErrors++
			return err
		}
		n.txFree = append(n.txFree, n.txSlotOf[id])
	}
}

// Transmit queues one Ethernet frame (without FCS) and notifies the device.
func (n *Net) Transmit(frame []byte) error {
	if len(frame) > MaxFrame {
		n.TxErrors++
		return ErrFrameSize
	}
	if err := n.reclaim(); err != nil {
		return err
	}
	if len(n.txFree) == 0 {
		return ErrTxBusy
	}
	slot := n.txFree[len(n.txFree)-1]
	n.txFree = n.txFree[:len(n.txFree)-1]
	buf, addr := n.txBuf(slot)
	clear(buf[:NetHeaderSize])
	binary.LittleEndian.PutUint16(buf[10:], 0) // num_buffers
	copy(buf[NetHeaderSize:], frame)
	id, err := n.tx.Post(addr, uint32(NetHeaderSize+len(frame)), false)
	if err != nil {
		n.txFree = append(n.txFree, slot)
		return err
	}
	n.txSlotOf[id] = slot
	n.tx.Notify()
	n.TxFrames++
	return nil
}
