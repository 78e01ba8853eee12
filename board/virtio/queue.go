package virtio

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Descriptor flags (spec 2.7.5).
const (
	descFNext  = 1
	descFWrite = 2
)

// Layout of a split virtqueue (spec 2.7): descriptor table (16 bytes per
// entry, 16-byte aligned), available ring (flags, idx, ring[size],
// used_event; 2-byte aligned) and used ring (flags, idx, ring[size] of
// {id, len}, avail_event; 4-byte aligned).
const (
	descSize      = 16
	usedElemSize  = 8
	queueAlign    = 16
	maxQueueSize  = 32768
	ringHeaderLen = 4
)

// QueueBytes returns the memory a queue of size entries needs.
func QueueBytes(size uint16) int {
	_, _, _, end := layout(size)
	return int(end)
}

// LegacyQueueBytes returns the memory a queue of size entries needs on a
// legacy device: the used ring starts at the next LegacyPageSize boundary.
func LegacyQueueBytes(size uint16) int {
	_, _, _, end := layoutAligned(size, LegacyPageSize)
	return int(end)
}

func layout(size uint16) (desc, avail, used, end uint32) {
	return layoutAligned(size, 4)
}

// layoutAligned places the used ring at the first usedAlign boundary after
// the available ring (its used_event included). A legacy device computes
// the same place from QueueAlign (spec 2.7, "Legacy Interfaces: A Note on
// Virtqueue Layout"); QEMU leaves used_event out of the sum, which gives the
// same boundary for any queue of 4 or more entries and an alignment of 8 or
// more (4+2n is then 4 modulo 8, never a boundary itself).
func layoutAligned(size uint16, usedAlign uint32) (desc, avail, used, end uint32) {
	n := uint32(size)
	desc = 0
	avail = desc + descSize*n
	availEnd := avail + ringHeaderLen + 2*n + 2
	used = (availEnd + usedAlign - 1) &^ (usedAlign - 1)
	end = used + ringHeaderLen + usedElemSize*n + 2
	return
}

// Queue is a split virtqueue whose rings live in mem, guest memory at
// physical address addr. Buffers handed to the device are single
// descriptors; the caller owns buffer memory until the device returns it.
//
// The device can write all of mem, not only the used ring the spec gives it
// (2.7), so the queue trusts nothing it reads there: every used element is
// checked against the driver's own record of each descriptor, kept here in
// driver-private memory, never against the descriptor table. The driver
// only writes mem (descriptors, available ring) and reads the used ring.
type Queue struct {
	mem  []byte
	addr uint64
	size uint16
	// legacy: laid out for a legacy device (InitLegacy)
	legacy bool

	descOff, availOff, usedOff uint32

	// shadow is what the driver put in each descriptor, and whether the
	// device holds it
	shadow [MaxQueue]shadowDesc
	// free descriptor stack
	free     [MaxQueue]uint16
	nfree    int
	availIdx uint16
	lastUsed uint16
	// usedPos counts the used elements read (the next one's position in
	// the device's sequence, not wrapping); seenPos is the position up to
	// which the device had published when last looked at
	usedPos, seenPos uint64

	transport *Transport
	index     uint32
}

// shadowDesc is the driver's copy of one descriptor.
type shadowDesc struct {
	addr     uint64
	length   uint32
	inFlight bool
	// postedAt is how far the device had published used elements when
	// the buffer was posted: an element before it was written before the
	// device could have seen this posting.
	postedAt uint64
}

// MaxQueue is the largest queue this driver builds: enough for the board's
// devices and small enough to keep Queue a fixed-size value.
const MaxQueue = 64

// Init lays out a queue of size entries (a power of two, at most MaxQueue)
// in mem, which must start on a 16-byte boundary at physical address addr.
// Every descriptor is free afterwards.
func (q *Queue) Init(mem []byte, addr uint64, size uint16) error {
	return q.init(mem, addr, size, queueAlign, 4, false)
}

// InitLegacy lays out a queue for a legacy device (spec 2.7, "Legacy
// Interfaces: A Note on Virtqueue Layout"): descriptor table, available
// ring, then the used ring at the next LegacyPageSize boundary, all in mem,
// which must start on a LegacyPageSize boundary (the device is given its
// page frame number) and be LegacyQueueBytes(size) long.
func (q *Queue) InitLegacy(mem []byte, addr uint64, size uint16) error {
	return q.init(mem, addr, size, LegacyPageSize, LegacyPageSize, true)
}

func (q *Queue) init(mem []byte, addr uint64, size uint16, align uint64, usedAlign uint32, legacy bool) error {
	if size == 0 || size > MaxQueue || size&(size-1) != 0 {
		return ErrQueueSize
	}
	_, _, _, end := layoutAligned(size, usedAlign)
	if addr%align != 0 || len(mem) < int(end) ||
		uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%4 != 0 {
		return ErrMemory
	}
	*q = Queue{mem: mem[:end:end], addr: addr, size: size, legacy: legacy}
	q.descOff, q.availOff, q.usedOff, _ = layoutAligned(size, usedAlign)
	clear(q.mem)
	for i := uint16(0); i < size; i++ {
		q.free[i] = size - 1 - i
	}
	q.nfree = int(size)
	return nil
}

// Size returns the number of descriptors.
func (q *Queue) Size() uint16 { return q.size }

// Free returns the number of free descriptors.
func (q *Queue) Free() int { return q.nfree }

// InFlight returns the number of buffers the device holds.
func (q *Queue) InFlight() int { return int(q.size) - q.nfree }

func (q *Queue) addrs() (desc, avail, used uint64) {
	return q.addr + uint64(q.descOff), q.addr + uint64(q.availOff), q.addr + uint64(q.usedOff)
}

// Post makes the buffer at physical address buf, length n, available to the
// device: readable by it, or writable when deviceWrites is set. It returns the
// descriptor ID the device will return in the used ring. The device is not
// notified: call Notify once after posting a batch.
func (q *Queue) Post(buf uint64, n uint32, deviceWrites bool) (id uint16, err error) {
	if q.nfree == 0 {
		return 0, ErrQueueFull
	}
	q.nfree--
	id = q.free[q.nfree]
	q.shadow[id] = shadowDesc{addr: buf, length: n, inFlight: true, postedAt: q.seenPos}

	// The whole descriptor is rewritten from the shadow: whatever the
	// device wrote into the table since is gone (spec 2.7.5).
	d := q.mem[q.descOff+uint32(id)*descSize:]
	binary.LittleEndian.PutUint64(d[0:], buf)
	binary.LittleEndian.PutUint32(d[8:], n)
	var flags uint16
	if deviceWrites {
		flags = descFWrite
	}
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(d[14:], 0)

	slot := q.availOff + ringHeaderLen + 2*uint32(q.availIdx%q.size)
	binary.LittleEndian.PutUint16(q.mem[slot:], id)
	q.availIdx++
	// The ring entry must be visible before the index that publishes it
	// (spec 2.7.13.3); flags and idx share one aligned word that only the
	// driver writes (the driver never reads it back).
	atomic.StoreUint32(q.word(q.availOff), uint32(q.availIdx)<<16)
	return id, nil
}

// Notify tells the device that new buffers are available (spec 4.2.3.3).
func (q *Queue) Notify() {
	if q.transport != nil {
		q.transport.Regs.Write32(QueueNotify, q.index)
	}
}

// Used pops one element of the used ring (spec 2.7.8). ok is false when the
// device has returned nothing new; otherwise one element (or a bogus index)
// was consumed and err says what it was worth:
//
//   - nil: the device gave back buffer id, having written its first written
//     bytes; the buffer is free again.
//   - ErrUsedLength: the device gave back buffer id but claims to have
//     written more than the buffer holds. The buffer is free again (the
//     caller re-posts or reuses it) and its contents are not to be used:
//     written is 0.
//   - ErrBadUsed: the element named no buffer the device holds (an id out
//     of range, or not in flight: never posted, or returned already), or
//     the used index claims more elements than there are buffers in flight,
//     or the element was published before the buffer it names was posted
//     (a buffer returned twice, re-posted in between).
//     Nothing came back; the buffers the device holds stay with it, since
//     the driver cannot tell which one the device meant. The queue skips
//     the bad element (or the whole claimed range), so the device cannot
//     make the driver spin.
//
// Everything is checked against the driver's shadow of its descriptors:
// the device can rewrite the descriptor table, so a length read there
// bounds nothing. A returned length never exceeds what the driver posted,
// so a caller that reads written bytes from its buffer stays inside it
// (spec 2.7.8: the driver MUST NOT make assumptions about data beyond len;
// it also makes none about len itself).
func (q *Queue) Used() (id uint16, written uint32, ok bool, err error) {
	idx := uint16(atomic.LoadUint32(q.word(q.usedOff)) >> 16)
	pending := idx - q.lastUsed
	if pending == 0 {
		return 0, 0, false, nil
	}
	// Each used element names a buffer the driver made available and the
	// device has not returned yet (2.7.8), so an honest device is never
	// further ahead than the buffers in flight. A bigger jump (or a step
	// backwards, which reads as a jump of almost 65536) is skipped whole.
	if int(pending) > q.InFlight() {
		q.lastUsed = idx
		// whatever is in flight may be answered from here on
		q.seenPos = q.usedPos
		for i := range q.shadow[:q.size] {
			q.shadow[i].postedAt = min(q.shadow[i].postedAt, q.usedPos)
		}
		return 0, 0, true, ErrBadUsed
	}
	q.seenPos = q.usedPos + uint64(pending)
	pos := q.usedPos
	e := q.mem[q.usedOff+ringHeaderLen+usedElemSize*uint32(q.lastUsed%q.size):]
	q.lastUsed++
	q.usedPos++
	rawID := binary.LittleEndian.Uint32(e[0:])
	written = binary.LittleEndian.Uint32(e[4:])
	if rawID >= uint32(q.size) || !q.shadow[rawID].inFlight {
		return 0, 0, true, ErrBadUsed
	}
	// The device writes used elements in order, so the answer to a
	// posting sits at or after the position published before it was
	// posted; one before it answered an earlier posting of the same
	// descriptor, which came back already.
	if pos < q.shadow[rawID].postedAt {
		return 0, 0, true, ErrBadUsed
	}
	id = uint16(rawID)
	q.shadow[id].inFlight = false
	q.free[q.nfree] = id
	q.nfree++
	if written > q.shadow[id].length {
		return id, 0, true, ErrUsedLength
	}
	return id, written, true, nil
}

// word returns the aligned 32-bit word at off in the queue memory.
func (q *Queue) word(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&q.mem[off]))
}
