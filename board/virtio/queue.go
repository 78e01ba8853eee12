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

func layout(size uint16) (desc, avail, used, end uint32) {
	n := uint32(size)
	desc = 0
	avail = desc + descSize*n
	availEnd := avail + ringHeaderLen + 2*n + 2
	used = (availEnd + 3) &^ 3
	end = used + ringHeaderLen + usedElemSize*n + 2
	return
}

// Queue is a split virtqueue whose rings live in mem, guest memory at
// physical address addr. Buffers handed to the device are single
// descriptors; the caller owns buffer memory until the device returns it.
type Queue struct {
	mem  []byte
	addr uint64
	size uint16

	descOff, availOff, usedOff uint32

	free     [64]uint16 // free descriptor stack (queues are at most 64 here)
	nfree    int
	availIdx uint16
	lastUsed uint16

	transport *Transport
	index     uint32
}

// MaxQueue is the largest queue this driver builds: enough for the board's
// devices and small enough to keep Queue a fixed-size value.
const MaxQueue = 64

// Init lays out a queue of size entries (a power of two, at most MaxQueue)
// in mem, which must start on a 16-byte boundary at physical address addr.
func (q *Queue) Init(mem []byte, addr uint64, size uint16) error {
	if size == 0 || size > MaxQueue || size&(size-1) != 0 {
		return ErrQueueSize
	}
	if addr%queueAlign != 0 || len(mem) < QueueBytes(size) ||
		uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%4 != 0 {
		return ErrMemory
	}
	*q = Queue{mem: mem, addr: addr, size: size}
	q.descOff, q.availOff, q.usedOff, _ = layout(size)
	clear(mem[:QueueBytes(size)])
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
	// driver writes.
	atomic.StoreUint32(q.word(q.availOff), uint32(q.availIdx)<<16)
	return id, nil
}

// Notify tells the device that new buffers are available (spec 4.2.3.3).
func (q *Queue) Notify() {
	if q.transport != nil {
		q.transport.Regs.Write32(QueueNotify, q.index)
	}
}

// Used pops one buffer the device has finished with, returning its
// descriptor ID and the number of bytes the device wrote into it. ok is false
// when the device has returned nothing new. A used element naming a
// descriptor that was not in flight, or a length beyond the buffer, is
// ErrBadUsed: the device is not trusted to be well formed.
func (q *Queue) Used() (id uint16, written uint32, ok bool, err error) {
	idx := uint16(atomic.LoadUint32(q.word(q.usedOff)) >> 16)
	if idx == q.lastUsed {
		return 0, 0, false, nil
	}
	e := q.mem[q.usedOff+ringHeaderLen+usedElemSize*uint32(q.lastUsed%q.size):]
	q.lastUsed++
	rawID := binary.LittleEndian.Uint32(e[0:])
	written = binary.LittleEndian.Uint32(e[4:])
	if rawID >= uint32(q.size) || q.inFree(uint16(rawID)) {
		return 0, 0, true, ErrBadUsed
	}
	id = uint16(rawID)
	d := q.mem[q.descOff+uint32(id)*descSize:]
	if written > binary.LittleEndian.Uint32(d[8:]) {
		written = 0
		err = ErrBadUsed
	}
	q.free[q.nfree] = id
	q.nfree++
	return id, written, true, err
}

func (q *Queue) inFree(id uint16) bool {
	for _, f := range q.free[:q.nfree] {
		if f == id {
			return true
		}
	}
	return false
}

// word returns the aligned 32-bit word at off in the queue memory.
func (q *Queue) word(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&q.mem[off]))
}
