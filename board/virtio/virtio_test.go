package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"testing"
)

// deviceModel is a register-level model of a virtio-mmio device (spec 4.2)
// with up to two split virtqueues, behaving as an entropy device (5.4) or a
// network device (5.1), with switches for fault injection. It DMAs into
// guest memory mem, which starts at physical address base.
//
// With version 1 it models the legacy interface (spec 4.2.4) as QEMU 7.2's
// hw/virtio/virtio-mmio.c does: 32 feature bits (HostFeaturesSel 1 reads 0,
// a GuestFeatures write with GuestFeaturesSel 1 is ignored), no QueueReady
// (reads 0), the rings placed from QueuePFN << log2(GuestPageSize), QueueNum
// and QueueAlign (used ring at the QueueAlign boundary after ring[num] of
// the available ring, virtio_queue_update_rings), a QueuePFN write of 0
// resetting the device. A register of the other interface is ignored and
// counted in guestErrors, where QEMU logs a guest error.
type deviceModel struct {
	mem  []byte
	base uint64

	magic, version, id uint32
	offered            uint64
	featSel, drvSel    uint32
	accepted           uint64
	status             uint32
	queueSel           uint32
	maxQueue           uint32
	queues             [2]queueState
	config             []byte
	served             int
	resets             int // device resets the driver asked for
	guestErrors        int // registers of the other interface used
	pageShift          uint32

	// network: frames the driver transmitted
	sent [][]byte

	faults

	// hostile, when set, answers every notification in place of the
	// well-behaved device (hostile_test.go)
	hostile func(m *deviceModel, queue uint32)
}

type faults struct {
	refuseFeatures bool // clears FEATURES_OK
	silent         bool // never returns buffers
	badID          bool // returns a descriptor ID beyond the queue
	overLong       bool // claims to have written more than the buffer
	empty          bool // returns buffers with nothing written
	needsReset     bool // sets DEVICE_NEEDS_RESET after the first answer
	pfnInUse       bool // legacy: QueuePFN reads non-zero, even after a reset
	pattern        byte // first byte written by the entropy device
}

type queueState struct {
	num, ready        uint32
	align             uint32 // legacy QueueAlign
	desc, avail, used uint64
	lastAvail         uint16
	usedIdx           uint16
}

func newModel(mem []byte, base uint64) *deviceModel {
	return &deviceModel{
		mem: mem, base: base,
		magic: Magic, version: 2, id: IDEntropy,
		offered:  FeatureVersion1,
		maxQueue: 64,
		faults:   faults{pattern: 0x40},
	}
}

func (m *deviceModel) q() *queueState { return &m.queues[m.queueSel%2] }

func (m *deviceModel) legacy() bool { return m.version == 1 }

// legacyRings places a legacy queue's rings from its descriptor table
// address, size and alignment (QEMU virtio_queue_update_rings).
func (q *queueState) legacyRings() {
	if q.desc == 0 {
		return
	}
	align := uint64(q.align)
	if align == 0 {
		align = 4096
	}
	q.avail = q.desc + 16*uint64(q.num)
	q.used = (q.avail + 4 + 2*uint64(q.num) + align - 1) &^ (align - 1)
}

// reset is a device reset: a Status write of 0, or on a legacy device a
// QueuePFN write of 0.
func (m *deviceModel) reset() {
	m.resets++
	m.status, m.accepted, m.queues = 0, 0, [2]queueState{}
}

func (m *deviceModel) Read32(off uint32) uint32 {
	switch off {
	case MagicValue:
		return m.magic
	case Version:
		return m.version
	case DeviceID:
		return m.id
	case VendorID:
		return 0x554d4551 // "QEMU"
	case DeviceFeatures:
		if m.legacy() && m.featSel != 0 {
			return 0
		}
		return uint32(m.offered >> (32 * m.featSel))
	case QueueNumMax:
		return m.maxQueue
	case QueueReady:
		if m.legacy() {
			m.guestErrors++
			return 0
		}
		return m.q().ready
	case QueuePFN:
		if !m.legacy() {
			m.guestErrors++
			return 0
		}
		if m.pfnInUse {
			return 0x1234
		}
		return uint32(m.q().desc >> m.pageShift)
	case Status:
		return m.status
	case InterruptStatus:
		return 0
	}
	if off >= Config && int(off-Config)+4 <= len(m.config) {
		return binary.LittleEndian.Uint32(m.config[off-Config:])
	}
	return 0
}

func (m *deviceModel) Write32(off uint32, v uint32) {
	q := m.q()
	switch off {
	case GuestPageSize, QueueAlign, QueuePFN:
		if !m.legacy() {
			m.guestErrors++
			return
		}
	case QueueReady, QueueDescLow, QueueDescHigh, QueueDriverLow,
		QueueDriverHigh, QueueDeviceLow, QueueDeviceHigh:
		if m.legacy() {
			m.guestErrors++
			return
		}
	}
	switch off {
	case GuestPageSize:
		m.pageShift = uint32(bits.TrailingZeros32(v))
		if m.pageShift > 31 {
			m.pageShift = 0
		}
	case QueueAlign:
		q.align = v
		q.legacyRings()
	case QueuePFN:
		if v == 0 {
			m.reset()
			return
		}
		q.desc = uint64(v) << m.pageShift
		q.legacyRings()
	case DeviceFeaturesSel:
		m.featSel = v & 1
	case DriverFeaturesSel:
		m.drvSel = v & 1
	case DriverFeatures:
		if m.legacy() && m.drvSel != 0 {
			m.guestErrors++
			return
		}
		m.accepted &^= uint64(0xffffffff) << (32 * m.drvSel)
		m.accepted |= uint64(v) << (32 * m.drvSel)
	case Status:
		if v == 0 {
			m.reset()
			return
		}
		if !m.legacy() && v&StatusFeaturesOK != 0 && (m.refuseFeatures || m.accepted&^m.offered != 0) {
			v &^= StatusFeaturesOK
		}
		m.status = v
	case QueueSel:
		m.queueSel = v
	case QueueNum:
		q.num = v
		if m.legacy() {
			q.legacyRings()
		}
	case QueueReady:
		q.ready = v
	case QueueDescLow:
		q.desc = q.desc&^0xffffffff | uint64(v)
	case QueueDescHigh:
		q.desc = q.desc&0xffffffff | uint64(v)<<32
	case QueueDriverLow:
		q.avail = q.avail&^0xffffffff | uint64(v)
	case QueueDriverHigh:
		q.avail = q.avail&0xffffffff | uint64(v)<<32
	case QueueDeviceLow:
		q.used = q.used&^0xffffffff | uint64(v)
	case QueueDeviceHigh:
		q.used = q.used&0xffffffff | uint64(v)<<32
	case QueueNotify:
		if m.hostile != nil {
			m.hostile(m, v)
			return
		}
		if m.status&StatusDriverOK == 0 || m.silent {
			return
		}
		switch {
		case m.id == IDEntropy:
			m.serveEntropy(&m.queues[0])
		case m.id == IDNetwork && v == 1:
			m.serveTransmit(&m.queues[1])
		}
	}
}

func (m *deviceModel) at(addr uint64) []byte { return m.mem[addr-m.base:] }

// next pops the next available descriptor: its ID, buffer address, length.
func (m *deviceModel) next(q *queueState) (id uint16, addr uint64, length uint32, ok bool) {
	n := uint16(q.num)
	if q.lastAvail == binary.LittleEndian.Uint16(m.at(q.avail+2)) {
		return 0, 0, 0, false
	}
	id = binary.LittleEndian.Uint16(m.at(q.avail + 4 + 2*uint64(q.lastAvail%n)))
	q.lastAvail++
	d := m.at(q.desc + 16*uint64(id))
	return id, binary.LittleEndian.Uint64(d[0:]), binary.LittleEndian.Uint32(d[8:]), true
}

// complete returns descriptor id with written bytes, applying the faults.
func (m *deviceModel) complete(q *queueState, id uint16, length, written uint32) {
	if m.overLong {
		written = length + 1
	}
	usedID := uint32(id)
	if m.badID {
		usedID = q.num + uint32(id)
	}
	e := m.at(q.used + 4 + 8*uint64(q.usedIdx%uint16(q.num)))
	binary.LittleEndian.PutUint32(e[0:], usedID)
	binary.LittleEndian.PutUint32(e[4:], written)
	q.usedIdx++
	binary.LittleEndian.PutUint16(m.at(q.used+2), q.usedIdx)
	if m.needsReset {
		m.status |= StatusDeviceNeedsReset
	}
}

func (m *deviceModel) serveEntropy(q *queueState) {
	for {
		id, addr, length, ok := m.next(q)
		if !ok {
			return
		}
		written := length
		if m.empty {
			written = 0
		}
		buf := m.at(addr)[:written]
		for i := range buf {
			buf[i] = m.pattern + byte(m.served+i)
		}
		m.served += int(written)
		m.complete(q, id, length, written)
	}
}

func (m *deviceModel) serveTransmit(q *queueState) {
	for {
		id, addr, length, ok := m.next(q)
		if !ok {
			return
		}
		m.sent = append(m.sent, append([]byte(nil), m.at(addr)[:length]...))
		m.complete(q, id, length, 0)
	}
}

// deliver puts a frame (with its virtio-net header) into the next receive
// buffer, as the device does when a frame arrives; false when the driver
// has posted none.
func (m *deviceModel) deliver(frame []byte) bool {
	q := &m.queues[0]
	id, addr, length, ok := m.next(q)
	if !ok {
		return false
	}
	pkt := append(make([]byte, m.netHeader()), frame...)
	n := copy(m.at(addr)[:length], pkt)
	m.complete(q, id, length, uint32(n))
	return true
}

// netHeader is the virtio-net header size the device uses (spec 5.1.6).
func (m *deviceModel) netHeader() int {
	if m.legacy() {
		return NetLegacyHeaderSize
	}
	return NetHeaderSize
}

const base = 0x4000_0000

// legacyDevice turns the model into a legacy (version 1) device, offering
// only what a legacy device can: 32 feature bits, no VIRTIO_F_VERSION_1.
func legacyDevice(m *deviceModel) {
	m.version = 1
	m.offered &= 0xffffffff
	if m.id == IDNetwork {
		m.offered |= FeatureAnyLayout
	}
}

// transports are the two virtio-mmio interfaces every driver test runs on.
var transports = []struct {
	name  string
	tweak func(*deviceModel)
}{
	{"v2", nil},
	{"legacy", legacyDevice},
}

// forTransports runs test on a version 2 and on a legacy device.
func forTransports(t *testing.T, test func(*testing.T, func(*deviceModel))) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { test(t, tr.tweak) })
	}
}

// both applies a then b.
func both(a, b func(*deviceModel)) func(*deviceModel) {
	return func(m *deviceModel) {
		if a != nil {
			a(m)
		}
		if b != nil {
			b(m)
		}
	}
}

func newRNG(t *testing.T, tweak func(*deviceModel)) (*RNG, *deviceModel, error) {
	t.Helper()
	mem := make([]byte, 3*4096)
	m := newModel(mem, base)
	if tweak != nil {
		tweak(m)
	}
	r := &RNG{Spin: 1000}
	err := r.Init(m, mem[:RNGQueueMemory], base, mem[2*4096:2*4096+64], base+2*4096)
	return r, m, err
}

func TestProbe(t *testing.T) {
	mem := make([]byte, 64)
	tests := []struct {
		name    string
		tweak   func(*deviceModel)
		id      uint32
		wantErr error
	}{
		{"entropy device", nil, IDEntropy, nil},
		{"network device", func(m *deviceModel) { m.id = IDNetwork }, IDNetwork, nil},
		{"empty slot", func(m *deviceModel) { m.id = 0 }, 0, ErrNoDevice},
		{"not virtio", func(m *deviceModel) { m.magic = 0 }, 0, ErrNoDevice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newModel(mem, base)
			if tc.tweak != nil {
				tc.tweak(m)
			}
			id, _, err := Probe(m)
			if !errors.Is(err, tc.wantErr) || id != tc.id {
				t.Fatalf("Probe = %d, %v; want %d, %v", id, err, tc.id, tc.wantErr)
			}
		})
	}
}

func TestRNGInit(t *testing.T) {
	tests := []struct {
		name    string
		tweak   func(*deviceModel)
		wantErr error
	}{
		{"ok", nil, nil},
		{"unknown transport version", func(m *deviceModel) { m.version = 3 }, ErrVersion},
		{"not an entropy device", func(m *deviceModel) { m.id = IDNetwork }, ErrNoDevice},
		{"no VERSION_1", func(m *deviceModel) { m.offered = 0 }, ErrNoVersion1},
		{"features refused", func(m *deviceModel) { m.refuseFeatures = true }, ErrFeatures},
		{"queue too small", func(m *deviceModel) { m.maxQueue = 4 }, ErrQueueSize},
		{"no queue", func(m *deviceModel) { m.maxQueue = 0 }, ErrQueueSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m, err := newRNG(t, tc.tweak)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Init = %v, want %v", err, tc.wantErr)
			}
			if err == nil && m.status&StatusDriverOK == 0 {
				t.Fatal("device not set DRIVER_OK")
			}
			if err == nil && m.accepted != FeatureVersion1 {
				t.Fatalf("accepted features %#x, want only VERSION_1", m.accepted)
			}
			if errors.Is(err, ErrNoVersion1) && m.status&StatusFailed == 0 {
				t.Fatal("device not told FAILED")
			}
			if m.guestErrors != 0 {
				t.Fatalf("%d accesses to legacy registers", m.guestErrors)
			}
		})
	}
}

// The legacy interface (spec 4.2.4) as QEMU 7.2 implements it.
func TestRNGInitLegacy(t *testing.T) {
	tests := []struct {
		name    string
		tweak   func(*deviceModel)
		qaddr   uint64
		wantErr error
	}{
		{"ok", nil, base, nil},
		{"device offers features", func(m *deviceModel) { m.offered = 1<<28 | 1<<24 }, base, nil},
		{"queue too small", func(m *deviceModel) { m.maxQueue = 4 }, base, ErrQueueSize},
		{"no queue", func(m *deviceModel) { m.maxQueue = 0 }, base, ErrQueueSize},
		{"huge QueueNumMax", func(m *deviceModel) { m.maxQueue = 0xffffffff }, base, nil},
		{"queue already in use (QueuePFN reads non-zero)", func(m *deviceModel) { m.pfnInUse = true }, base, ErrQueueInUse},
		{"queue not page aligned", nil, base + 16, ErrMemory},
		{"queue at page frame 0", nil, 0, ErrQueueAddr},
		{"queue beyond 2^32 pages", nil, 1 << 44, ErrQueueAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := make([]byte, 3*4096)
			m := newModel(mem, tc.qaddr)
			legacyDevice(m)
			if tc.tweak != nil {
				tc.tweak(m)
			}
			r := &RNG{Spin: 1000}
			err := r.Init(m, mem[:RNGQueueMemory], tc.qaddr, mem[2*4096:2*4096+64], tc.qaddr+2*4096)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Init = %v, want %v", err, tc.wantErr)
			}
			if m.guestErrors != 0 {
				t.Fatalf("%d accesses to registers the legacy interface does not have", m.guestErrors)
			}
			if err != nil {
				return
			}
			if m.status != StatusAcknowledge|StatusDriver|StatusDriverOK {
				t.Fatalf("status %#x, want ACKNOWLEDGE|DRIVER|DRIVER_OK (no FEATURES_OK on a legacy device)", m.status)
			}
			if m.accepted != 0 {
				t.Fatalf("accepted features %#x, want none", m.accepted)
			}
			q := m.queues[0]
			if 1<<m.pageShift != LegacyPageSize || q.desc != tc.qaddr || q.num != 8 || q.align != LegacyPageSize {
				t.Fatalf("queue at %#x (page %d), %d entries, align %d", q.desc, 1<<m.pageShift, q.num, q.align)
			}
			b := make([]byte, 100)
			if !r.Fill(b) || b[0] != 0x40 || b[99] != 0x40+99 {
				t.Fatalf("Fill over the legacy rings: %x", b)
			}
		})
	}
}

func TestRNGFill(t *testing.T) { forTransports(t, testRNGFill) }

func testRNGFill(t *testing.T, transport func(*deviceModel)) {
	r, _, err := newRNG(t, transport)
	if err != nil {
		t.Fatal(err)
	}
	// more than the 64-byte DMA buffer and more than the queue size in
	// requests, so descriptors and ring slots are recycled
	b := make([]byte, 64*20+7)
	if !r.Fill(b) {
		t.Fatal("Fill failed")
	}
	want := make([]byte, len(b))
	for i := range want {
		want[i] = 0x40 + byte(i)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("Fill returned bytes not from the device:\n got %x\nwant %x", b[:80], want[:80])
	}
	if r.queue.Free() != 8 {
		t.Fatalf("%d descriptors free after Fill, want 8", r.queue.Free())
	}
}

func TestRNGFaults(t *testing.T) { forTransports(t, testRNGFaults) }

func testRNGFaults(t *testing.T, transport func(*deviceModel)) {
	tests := []struct {
		name  string
		tweak func(*deviceModel)
	}{
		{"device never answers", func(m *deviceModel) { m.silent = true }},
		{"used element names a descriptor beyond the queue", func(m *deviceModel) { m.badID = true }},
		{"used length beyond the buffer", func(m *deviceModel) { m.overLong = true }},
		{"device writes nothing", func(m *deviceModel) { m.empty = true }},
		{"device needs reset", func(m *deviceModel) { m.needsReset = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, err := newRNG(t, both(transport, tc.tweak))
			if err != nil {
				t.Fatal(err)
			}
			if r.Fill(make([]byte, 32)) {
				t.Fatal("Fill succeeded on a faulty device")
			}
		})
	}
}

func TestQueueInit(t *testing.T) {
	mem := make([]byte, 4096)
	var q Queue
	tests := []struct {
		name string
		mem  []byte
		addr uint64
		size uint16
		want error
	}{
		{"ok", mem, base, 8, nil},
		{"not a power of two", mem, base, 6, ErrQueueSize},
		{"too large", mem, base, 128, ErrQueueSize},
		{"zero", mem, base, 0, ErrQueueSize},
		{"misaligned", mem, base + 8, 8, ErrMemory},
		{"too small", mem[:100], base, 8, ErrMemory},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := q.Init(tc.mem, tc.addr, tc.size); !errors.Is(err, tc.want) {
				t.Fatalf("Init = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	mem := make([]byte, 4096)
	var q Queue
	if err := q.Init(mem, base, 2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := q.Post(base+2048, 16, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Post(base+2048, 16, true); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Post = %v, want ErrQueueFull", err)
	}
}

// The bare-metal random source runs before the heap exists.
func TestFillDoesNotAllocate(t *testing.T) {
	r, _, err := newRNG(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 200)
	if n := testing.AllocsPerRun(50, func() { r.Fill(b) }); n != 0 {
		t.Fatalf("%v allocations per Fill, want 0", n)
	}
}

func TestQueueRejectsDoubleReturn(t *testing.T) {
	mem := make([]byte, 8192)
	m := newModel(mem, base)
	m.id = IDNetwork
	tr := &Transport{Regs: m}
	if err := tr.Init(0); err != nil {
		t.Fatal(err)
	}
	var q Queue
	if err := q.Init(mem[:4096], base, 4); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetupQueue(0, &q); err != nil {
		t.Fatal(err)
	}
	tr.Ready()
	id, err := q.Post(base+4096, 64, true)
	if err != nil {
		t.Fatal(err)
	}
	qs := &m.queues[0]
	m.next(qs)
	m.complete(qs, id, 64, 8)
	if _, _, ok, err := q.Used(); !ok || err != nil {
		t.Fatalf("first return: %v %v", ok, err)
	}
	m.complete(qs, id, 64, 8) // the same buffer again
	if _, _, ok, err := q.Used(); !ok || !errors.Is(err, ErrBadUsed) {
		t.Fatalf("second return of the same descriptor: %v %v, want ErrBadUsed", ok, err)
	}
	if q.Free() != 4 {
		t.Fatalf("%d free descriptors, want 4", q.Free())
	}
}
