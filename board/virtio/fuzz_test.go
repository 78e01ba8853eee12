package virtio

import (
	"encoding/binary"
	"errors"
	"sort"
	"testing"
)

// fuzzOps reads a hostile device's moves from the fuzzer's bytes.
type fuzzOps []byte

func (o *fuzzOps) byte() byte {
	if len(*o) == 0 {
		return 0
	}
	b := (*o)[0]
	*o = (*o)[1:]
	return b
}

func (o *fuzzOps) u16() uint16 { return uint16(o.byte()) | uint16(o.byte())<<8 }
func (o *fuzzOps) u32() uint32 { return uint32(o.u16()) | uint32(o.u16())<<16 }

// FuzzQueue plays the fuzzer's bytes as a hostile device against one
// queue, mixed with the driver posting and taking back buffers. The device
// may write anything anywhere in the queue memory (descriptor table,
// available ring, used ring). Checked: no panic or out-of-bounds access,
// the driver writes nothing outside the queue memory, every buffer is
// either free or in flight and the queue agrees with the driver's own
// record, every buffer the queue hands back was in flight with a length
// within it; and afterwards an honest device gets every buffer back to the
// driver and ordinary traffic works.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 5, 1, 5, 1, 1})
	f.Add([]byte{0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 255, 255, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 3, 0xe8, 0x03, 1, 1, 5, 1})
	f.Add([]byte{0, 0, 4, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 5, 1, 1})
	f.Add([]byte{0, 0, 0, 0, 6, 2, 0, 8, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		const size = 8
		const bufLen = 64
		const guard = 64
		qlen := QueueBytes(size)
		bufBase := uint64(base + 4096)
		mem := make([]byte, 4096+size*bufLen)
		for i := qlen; i < qlen+guard; i++ {
			mem[i] = 0xa5
		}
		var q Queue
		if err := q.Init(mem[:qlen], base, size); err != nil {
			t.Fatal(err)
		}
		h := hostileDevice{m: newModel(mem, base), q: &queueState{num: size}}
		h.q.desc, h.q.avail, h.q.used = q.addrs()

		// the driver's own record: posted length by descriptor
		inFlight := map[uint16]uint32{}
		var devLastAvail uint16
		check := func(what string) {
			t.Helper()
			if q.Free()+len(inFlight) != size || q.InFlight() != len(inFlight) {
				t.Fatalf("%s: queue has %d free, %d in flight; the driver posted %d: a buffer was lost", what, q.Free(), q.InFlight(), len(inFlight))
			}
		}
		used := func() (uint16, uint32, bool, error) {
			var id uint16
			var w uint32
			var ok bool
			var err error
			noPanic(t, "Used", func() { id, w, ok, err = q.Used() })
			if ok && (err == nil || errors.Is(err, ErrUsedLength)) {
				n, was := inFlight[id]
				if !was {
					t.Fatalf("Used handed back descriptor %d, which was not in flight", id)
				}
				if w > n {
					t.Fatalf("Used says %d bytes written into a %d-byte buffer", w, n)
				}
				delete(inFlight, id)
			}
			if !ok && err != nil {
				t.Fatalf("Used: nothing consumed but %v", err)
			}
			check("Used")
			return id, w, ok, err
		}
		post := func(length uint32) {
			id, err := q.Post(bufBase+uint64(len(inFlight))*bufLen, length, true)
			if err != nil {
				if !errors.Is(err, ErrQueueFull) || len(inFlight) != size {
					t.Fatalf("Post with %d in flight: %v", len(inFlight), err)
				}
				return
			}
			if _, was := inFlight[id]; was {
				t.Fatalf("Post reused descriptor %d, which is in flight", id)
			}
			inFlight[id] = length
			check("Post")
		}

		ops := fuzzOps(data)
		for steps := 0; len(ops) > 0 && steps < 1000; steps++ {
			switch ops.byte() % 7 {
			case 0: // driver posts a buffer
				post(uint32(ops.byte())%bufLen + 1)
			case 1: // driver takes back what the device returned
				used()
			case 2: // device pushes any used element
				h.push(ops.u32(), ops.u32())
			case 3: // device publishes any used index
				h.setIdx(ops.u16())
			case 4: // device writes any word anywhere in the queue memory
				off := int(ops.u16()) % (qlen - 3)
				binary.LittleEndian.PutUint32(mem[off:], ops.u32())
			case 5: // device honestly returns the next available buffer
				avail := binary.LittleEndian.Uint16(mem[h.q.avail-base+2:])
				if avail == devLastAvail {
					break
				}
				id := binary.LittleEndian.Uint16(mem[h.q.avail-base+4+2*uint64(devLastAvail%size):])
				devLastAvail++
				if n, ok := inFlight[id]; ok {
					h.push(uint32(id), n/2)
				}
			case 6: // device rewrites a descriptor's length
				h.setDescLen(uint16(ops.byte())%size, ops.u32())
			}
		}

		// drain: the driver must stop finding elements within a bound
		drained := false
		for i := 0; i < 4*size; i++ {
			if _, _, ok, _ := used(); !ok {
				drained = true
				break
			}
		}
		if !drained {
			t.Fatal("the driver keeps finding used elements: the device holds it in a loop")
		}
		// an honest device returns what it holds, from the index it
		// published
		h.q.usedIdx = binary.LittleEndian.Uint16(mem[h.q.used-base+2:])
		var held []int
		for id := range inFlight {
			held = append(held, int(id))
		}
		sort.Ints(held)
		for _, id := range held {
			h.push(uint32(id), inFlight[uint16(id)])
		}
		for range held {
			if _, _, ok, err := used(); !ok || err != nil {
				t.Fatalf("an honest return after the hostile phase: %v %v", ok, err)
			}
		}
		if q.Free() != size {
			t.Fatalf("%d descriptors free after the device returned everything, want %d", q.Free(), size)
		}
		// ordinary traffic: three rounds of a full ring
		for round := 0; round < 3; round++ {
			for i := 0; i < size; i++ {
				post(bufLen)
			}
			for id, n := range inFlight {
				h.push(uint32(id), n)
			}
			for i := 0; i < size; i++ {
				if _, w, ok, err := used(); !ok || err != nil || w != bufLen {
					t.Fatalf("round %d: honest return %d: %d %v %v", round, i, w, ok, err)
				}
			}
		}
		for i := qlen; i < qlen+guard; i++ {
			if mem[i] != 0xa5 {
				t.Fatalf("the driver wrote outside its queue memory at %d", i)
			}
		}
	})
}

// liar is a hostile device whose moves come from the fuzzer's bytes. Its
// lies are about buffers it holds (lengths, contents, descriptors it has
// read, the same buffer twice), ids beyond the queue and used indices that
// run ahead or back: each is something the driver either cannot tell from
// an honest answer, or must refuse. (Naming a buffer it was never given
// and that the driver cannot tell from an honest answer would only confuse
// the device model itself; FuzzQueue covers any id.)
type liar struct {
	ops   *fuzzOps
	held  [2][]heldBuf
	epoch int
}

type heldBuf struct {
	id     uint16
	addr   uint64
	length uint32
}

// sync forgets what a reset took back.
func (l *liar) sync(m *deviceModel) {
	if m.resets != l.epoch {
		l.held = [2][]heldBuf{}
		l.epoch = m.resets
	}
}

// move makes one move on queue qi.
func (l *liar) move(m *deviceModel, qi uint32) {
	l.sync(m)
	h := hostileOn(m, qi)
	held := &l.held[qi%2]
	pick := func() (heldBuf, bool) {
		if len(*held) == 0 {
			return heldBuf{}, false
		}
		i := int(l.ops.byte()) % len(*held)
		b := (*held)[i]
		*held = append((*held)[:i], (*held)[i+1:]...)
		return b, true
	}
	switch l.ops.byte() % 8 {
	case 0: // take a buffer and keep it
		if id, addr, n, ok := h.take(); ok {
			*held = append(*held, heldBuf{id, addr, n})
		}
	case 1: // return a held buffer with any length, having written into it
		if b, ok := pick(); ok {
			h.write(b.addr, int(b.length), l.ops.byte())
			h.push(uint32(b.id), l.ops.u32())
		}
	case 2: // return a held buffer honestly, with a frame in it
		if b, ok := pick(); ok {
			n := min(b.length, NetHeaderSize+60)
			h.write(b.addr, int(n), 0x5a)
			h.push(uint32(b.id), n)
		}
	case 3: // an id beyond the queue
		h.push(uint32(h.q.num)+uint32(l.ops.u16()), l.ops.u32())
	case 4: // a used index further than anything in flight, or back
		h.setIdx(h.q.usedIdx + uint16(h.q.num) + 1 + l.ops.u16()%(65535-2*uint16(h.q.num)))
	case 5: // rewrite the descriptor of a held buffer
		if len(*held) > 0 {
			b := (*held)[int(l.ops.byte())%len(*held)]
			h.setDescLen(b.id, l.ops.u32())
			binary.LittleEndian.PutUint64(h.m.at(h.q.desc+16*uint64(b.id)), uint64(l.ops.u32()))
		}
	case 6: // return a held buffer twice
		if b, ok := pick(); ok {
			h.push(uint32(b.id), 0)
			h.push(uint32(b.id), 0)
		}
	case 7: // nothing
	}
}

// giveBack returns every buffer the device holds, honestly.
func (l *liar) giveBack(m *deviceModel) {
	l.sync(m)
	for qi := range l.held {
		h := hostileOn(m, uint32(qi))
		for _, b := range l.held[qi] {
			n := uint32(0)
			if qi == netReceiveQ || m.id == IDEntropy {
				n = min(b.length, NetHeaderSize+60)
				h.write(b.addr, int(n), 0x5a)
			}
			h.push(uint32(b.id), n)
		}
		l.held[qi] = nil
	}
}

// FuzzNet plays the fuzzer's bytes as a lying network device (liar),
// interleaved with the driver receiving and transmitting. Checked: no
// panic, no frame longer than its buffer or the caller's, every receive
// buffer posted and every transmit buffer free or in flight after every
// call; and once the device behaves, frames flow both ways with every
// buffer back.
func FuzzNet(f *testing.F) { fuzzNet(f, nil) }

// FuzzNetLegacy is FuzzNet on a legacy (version 1) device, whose rings the
// driver placed by page frame number.
func FuzzNetLegacy(f *testing.F) { fuzzNet(f, legacyDevice) }

func fuzzNet(f *testing.F, transport func(*deviceModel)) {
	f.Add([]byte{2, 0, 4, 1, 0, 0, 0xff, 0xff, 0, 0, 0})
	f.Add([]byte{3, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1})
	f.Add([]byte{2, 0, 4, 2, 5, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 2, 0, 4, 6, 0, 0})
	f.Add([]byte{2, 4, 0, 0, 2, 4, 3, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, m, err := newNet(t, transport)
		if err != nil {
			t.Fatal(err)
		}
		ops := fuzzOps(data)
		l := &liar{ops: &ops}
		m.hostile = func(*deviceModel, uint32) {} // notifications go unanswered
		buf := make([]byte, MaxFrame)
		invariants := func(what string) {
			t.Helper()
			if n.rx.InFlight() != n.rxBufs {
				t.Fatalf("%s: %d receive buffers posted, want %d", what, n.rx.InFlight(), n.rxBufs)
			}
			if n.ntxFree+n.tx.InFlight() != n.txBufs {
				t.Fatalf("%s: %d transmit buffers free and %d in flight, want %d in all", what, n.ntxFree, n.tx.InFlight(), n.txBufs)
			}
			var seen [MaxQueue]bool
			for _, s := range n.txFree[:n.ntxFree] {
				if seen[s] {
					t.Fatalf("%s: transmit buffer %d free twice", what, s)
				}
				seen[s] = true
			}
			for id := range n.tx.Size() {
				if n.tx.shadow[id].inFlight && seen[n.txSlotOf[id]] {
					t.Fatalf("%s: transmit buffer %d both free and in flight", what, n.txSlotOf[id])
				}
			}
		}
		for steps := 0; len(ops) > 0 && steps < 500; steps++ {
			switch ops.byte() % 4 {
			case 0:
				var got int
				var ok bool
				noPanic(t, "Receive", func() { got, ok, _ = n.Receive(buf) })
				if ok && (got > len(buf) || got > MaxFrame) {
					t.Fatalf("Receive returned %d bytes", got)
				}
				invariants("Receive")
			case 1:
				fr := frame(int(ops.byte())*5+14, 0x33)
				noPanic(t, "Transmit", func() { _ = n.Transmit(fr) })
				invariants("Transmit")
			case 2:
				l.move(m, netReceiveQ)
			case 3:
				l.move(m, netTransmitQ)
			}
		}
		l.giveBack(m)
		// the driver takes back what came, then ordinary traffic
		for i := 0; i < 4*int(n.size); i++ {
			if _, ok, err := n.Receive(buf); !ok && err == nil {
				break
			}
		}
		m.hostile = nil
		n.tx.Notify() // the notifications the liar swallowed
		if err := n.Transmit(frame(64, 1)); err != nil {
			t.Fatalf("Transmit to the honest device: %v", err)
		}
		invariants("after")
		netRecovers(t, n, m)
	})
}

// FuzzRNG plays the fuzzer's bytes as a lying entropy device (liar)
// against Fill. Checked: no panic, at most one request in flight, and once
// the device behaves Fill works and every descriptor is back.
func FuzzRNG(f *testing.F) { fuzzRNG(f, nil) }

// FuzzRNGLegacy is FuzzRNG on a legacy (version 1) device.
func FuzzRNGLegacy(f *testing.F) { fuzzRNG(f, legacyDevice) }

func fuzzRNG(f *testing.F, transport func(*deviceModel)) {
	f.Add([]byte{10, 1, 0, 1, 0, 0, 0x10, 0, 0, 10})
	f.Add([]byte{10, 1, 0, 1, 0, 0xff, 0xff, 0, 0, 10})
	f.Add([]byte{10, 1, 4, 0, 0})
	f.Add([]byte{10, 1, 6, 0, 0})
	f.Add([]byte{10, 2, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, m, err := newRNG(t, transport)
		if err != nil {
			t.Fatal(err)
		}
		r.Spin = 20
		ops := fuzzOps(data)
		l := &liar{ops: &ops}
		m.hostile = func(m *deviceModel, qi uint32) {
			for k := ops.byte() % 4; k > 0; k-- {
				l.move(m, qi)
			}
		}
		for steps := 0; len(ops) > 0 && steps < 100; steps++ {
			b := make([]byte, int(ops.byte())%100+1)
			noPanic(t, "Fill", func() { r.Fill(b) })
			if r.queue.InFlight() > 1 {
				t.Fatalf("%d requests in flight", r.queue.InFlight())
			}
		}
		m.hostile = nil
		l.giveBack(m)
		b := make([]byte, 300)
		if !r.Fill(b) {
			t.Fatal("Fill fails once the device behaves")
		}
		if r.queue.Free() != rngQueueSize {
			t.Fatalf("%d descriptors free, want %d", r.queue.Free(), rngQueueSize)
		}
	})
}
