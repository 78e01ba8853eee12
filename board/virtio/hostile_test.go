package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// hostileDevice is the fault-injection side of deviceModel: a device that
// writes whatever it likes into the memory it shares with the driver, as a
// compromised or buggy device (or whoever controls QEMU) can. The spec says
// who writes which part of a split virtqueue (2.7: descriptor table and
// available ring the driver, used ring the device), but nothing stops the
// device writing all of it, nor writing nonsense in its own part.
type hostileDevice struct {
	m *deviceModel
	q *queueState
}

func hostileOn(m *deviceModel, queue uint32) hostileDevice {
	return hostileDevice{m, &m.queues[queue%2]}
}

// take pops the next buffer the driver made available, like the honest
// device does (false when there is none).
func (h hostileDevice) take() (id uint16, addr uint64, length uint32, ok bool) {
	return h.m.next(h.q)
}

// push writes a used element {id, length} at the device's used index and
// publishes it, whatever id and length are.
func (h hostileDevice) push(id, length uint32) {
	q := h.q
	e := h.m.at(q.used + 4 + 8*uint64(q.usedIdx%uint16(q.num)))
	binary.LittleEndian.PutUint32(e[0:], id)
	binary.LittleEndian.PutUint32(e[4:], length)
	q.usedIdx++
	binary.LittleEndian.PutUint16(h.m.at(q.used+2), q.usedIdx)
}

// setIdx publishes used index idx without writing any element.
func (h hostileDevice) setIdx(idx uint16) {
	h.q.usedIdx = idx
	binary.LittleEndian.PutUint16(h.m.at(h.q.used+2), idx)
}

// setDescLen rewrites the length of descriptor id in the descriptor table.
func (h hostileDevice) setDescLen(id uint16, length uint32) {
	binary.LittleEndian.PutUint32(h.m.at(h.q.desc+16*uint64(id)+8), length)
}

// write fills n bytes of guest memory at addr with b (clipped to the
// model's memory: the model itself must not crash the test).
func (h hostileDevice) write(addr uint64, n int, b byte) {
	if addr < h.m.base || addr-h.m.base >= uint64(len(h.m.mem)) {
		return
	}
	buf := h.m.at(addr)
	if n > len(buf) {
		n = len(buf)
	}
	for i := range buf[:n] {
		buf[i] = b
	}
}

// noPanic runs f and turns a panic into a test failure: a device must never
// crash the stick.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s panicked: %v", what, p)
		}
	}()
	f()
}

// Each case is a device behaviour the driver must survive: Fill must not
// panic nor hand out bytes the device did not write for this request, and
// once the device behaves again, Fill works and every descriptor is back.
func TestHostileRNG(t *testing.T) { forTransports(t, testHostileRNG) }

func testHostileRNG(t *testing.T, transport func(*deviceModel)) {
	tests := []struct {
		name string
		// act answers the call-th notification of the hostile phase
		act func(h hostileDevice, call int)
		// results of successive Fill calls in the hostile phase
		want []bool
	}{
		{"used length over the buffer, descriptor table rewritten to match", func(h hostileDevice, _ int) {
			id, _, _, _ := h.take()
			h.setDescLen(id, 1<<20)
			h.push(uint32(id), 1<<20)
		}, []bool{false}},
		{"used length over the request but inside the DMA buffer, descriptor rewritten", func(h hostileDevice, _ int) {
			id, addr, _, _ := h.take()
			h.write(addr, 64, 0xee)
			h.setDescLen(id, 64)
			h.push(uint32(id), 64)
		}, []bool{false}},
		{"used id beyond the queue", func(h hostileDevice, _ int) {
			id, addr, n, _ := h.take()
			h.write(addr, int(n), 0xee)
			h.push(uint32(id)+8, n)
		}, []bool{false}},
		{"used id of a descriptor not in flight", func(h hostileDevice, _ int) {
			id, addr, n, _ := h.take()
			h.write(addr, int(n), 0xee)
			h.push(uint32(id+1)%8, n)
		}, []bool{false}},
		{"used index jumps ahead by more than the queue size", func(h hostileDevice, _ int) {
			h.setIdx(h.q.usedIdx + 1000)
		}, []bool{false}},
		{"used index goes backwards", func(h hostileDevice, _ int) {
			h.setIdx(h.q.usedIdx - 3)
		}, []bool{false}},
		// two used elements for one request: the whole batch is
		// suspect, and the duplicate must not answer the next request
		{"a buffer returned twice at once, then silence", func(h hostileDevice, call int) {
			if call > 0 {
				return
			}
			id, addr, n, _ := h.take()
			h.write(addr, int(n), 0x77)
			h.push(uint32(id), n)
			h.push(uint32(id), n)
		}, []bool{false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, m, err := newRNG(t, transport)
			if err != nil {
				t.Fatal(err)
			}
			// an honest request first: the used ring and the DMA buffer
			// now hold an old answer a hostile device could point at
			prev := make([]byte, 32)
			if !r.Fill(prev) {
				t.Fatal("honest Fill failed")
			}
			calls := 0
			m.hostile = func(m *deviceModel, q uint32) {
				tc.act(hostileOn(m, q), calls)
				calls++
			}
			for i, want := range tc.want {
				b := make([]byte, 32)
				var ok bool
				noPanic(t, "Fill", func() { ok = r.Fill(b) })
				if ok != want {
					t.Fatalf("hostile Fill %d = %v, want %v", i, ok, want)
				}
				if ok && (bytes.Equal(b, prev) || !bytes.Equal(b, bytes.Repeat([]byte{0x77}, 32))) {
					t.Fatalf("hostile Fill %d returned bytes the device did not write for it: %x", i, b)
				}
			}
			m.hostile = nil
			b := make([]byte, 200)
			if !r.Fill(b) {
				t.Fatal("Fill fails once the device behaves again")
			}
			if r.queue.Free() != 8 {
				t.Fatalf("%d descriptors free after the device behaved again, want 8: a buffer was lost", r.queue.Free())
			}
		})
	}
}

// netRecovers checks that every receive buffer is posted and every transmit
// buffer free: the device can fill size frames in a row, the driver
// receives them all, and it can queue size frames to a device that holds
// them.
func netRecovers(t *testing.T, n *Net, m *deviceModel) {
	t.Helper()
	m.hostile = nil
	const size = 8
	// drain what the hostile phase left
	for i := 0; i < 4*size; i++ {
		if _, ok, err := n.Receive(make([]byte, MaxFrame)); !ok && err == nil {
			break
		}
	}
	for i := 0; i < size; i++ {
		if !m.deliver(frame(60+i, byte(i))) {
			t.Fatalf("only %d receive buffers posted, want %d: a buffer was lost", i, size)
		}
	}
	buf := make([]byte, MaxFrame)
	for i := 0; i < size; i++ {
		l, ok, err := n.Receive(buf)
		if !ok || err != nil || !bytes.Equal(buf[:l], frame(60+i, byte(i))) {
			t.Fatalf("frame %d after the hostile phase: %v %v", i, ok, err)
		}
	}
	m.silent = true
	for i := 0; i < size; i++ {
		if err := n.Transmit(frame(64, 0)); err != nil {
			t.Fatalf("only %d transmit buffers free, want %d: %v", i, size, err)
		}
	}
	m.silent = false
}

func TestHostileNetReceive(t *testing.T) { forTransports(t, testHostileNetReceive) }

func testHostileNetReceive(t *testing.T, transport func(*deviceModel)) {
	tests := []struct {
		name string
		// act is the hostile device's one move on the receive queue
		act func(h hostileDevice)
		// bufLen is the caller's frame buffer
		bufLen int
	}{
		{"used length over the buffer", func(h hostileDevice) {
			id, _, n, _ := h.take()
			h.push(uint32(id), n+1)
		}, MaxFrame},
		{"used length far over the buffer, descriptor table rewritten to match", func(h hostileDevice) {
			id, _, _, _ := h.take()
			h.setDescLen(id, 60000)
			h.push(uint32(id), 60000)
		}, 64 << 10},
		{"used length spanning the next buffer, descriptor table rewritten to match", func(h hostileDevice) {
			id, _, _, _ := h.take()
			h.setDescLen(id, 2*NetBufferSize)
			h.push(uint32(id), 2*NetBufferSize)
		}, 64 << 10},
		{"used index jumps ahead by more than the queue size", func(h hostileDevice) {
			h.setIdx(h.q.usedIdx + 1000)
		}, MaxFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, m, err := newNet(t, transport)
			if err != nil {
				t.Fatal(err)
			}
			// an honest frame first: its buffer and used element stay
			// behind for a hostile device to point at
			old := frame(100, 0x55)
			m.deliver(old)
			buf := make([]byte, tc.bufLen)
			if l, ok, err := n.Receive(buf); !ok || err != nil || !bytes.Equal(buf[:l], old) {
				t.Fatalf("honest frame: %v %v", ok, err)
			}
			tc.act(hostileOn(m, netReceiveQ))
			clear(buf)
			for i := 0; i < 4; i++ {
				var l int
				var ok bool
				noPanic(t, "Receive", func() { l, ok, _ = n.Receive(buf) })
				if ok {
					t.Fatalf("Receive returned a %d-byte frame the device never wrote", l)
				}
			}
			if n.RxErrors == 0 {
				t.Fatal("the malformed used element was not counted")
			}
			netRecovers(t, n, m)
		})
	}
}

// A receive buffer returned twice in one batch: the driver re-posts it
// after the first element, so the second names a buffer in flight again,
// but was written before the device could have seen that posting.
func TestHostileNetDuplicate(t *testing.T) { forTransports(t, testHostileNetDuplicate) }

func testHostileNetDuplicate(t *testing.T, transport func(*deviceModel)) {
	n, m, err := newNet(t, transport)
	if err != nil {
		t.Fatal(err)
	}
	f := frame(100, 0x66)
	h := hostileOn(m, netReceiveQ)
	id, addr, _, _ := h.take()
	pkt := append(make([]byte, m.netHeader()), f...)
	copy(m.at(addr), pkt)
	h.push(uint32(id), uint32(len(pkt)))
	h.push(uint32(id), uint32(len(pkt)))
	buf := make([]byte, MaxFrame)
	if l, ok, err := n.Receive(buf); !ok || err != nil || !bytes.Equal(buf[:l], f) {
		t.Fatalf("first copy: %v %v", ok, err)
	}
	for i := 0; i < 4; i++ {
		if l, ok, _ := n.Receive(buf); ok {
			t.Fatalf("the frame came out again (%d bytes): a duplicate used element was taken for the re-posted buffer", l)
		}
	}
	if n.RxErrors == 0 {
		t.Fatal("the duplicate was not counted")
	}
	netRecovers(t, n, m)
}

func TestHostileNetTransmit(t *testing.T) { forTransports(t, testHostileNetTransmit) }

func testHostileNetTransmit(t *testing.T, transport func(*deviceModel)) {
	tests := []struct {
		name string
		act  func(h hostileDevice)
	}{
		{"used length over the frame", func(h hostileDevice) {
			id, _, n, _ := h.take()
			h.push(uint32(id), n+1)
		}},
		{"used length far over the buffer, descriptor table rewritten to match", func(h hostileDevice) {
			id, _, _, _ := h.take()
			h.setDescLen(id, 1<<20)
			h.push(uint32(id), 1<<20)
		}},
		{"used id beyond the queue", func(h hostileDevice) {
			id, _, _, _ := h.take()
			h.push(uint32(id)+8, 0)
		}},
		{"used index jumps ahead by more than the queue size", func(h hostileDevice) {
			h.setIdx(h.q.usedIdx + 1000)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, m, err := newNet(t, transport)
			if err != nil {
				t.Fatal(err)
			}
			// three frames the device holds on to: their buffers must
			// stay untouched until the device gives them back
			m.silent = true
			var queued [][]byte
			for i := 0; i < 3; i++ {
				f := frame(200, byte(0x10*i))
				queued = append(queued, f)
				if err := n.Transmit(f); err != nil {
					t.Fatal(err)
				}
			}
			m.silent = false
			m.hostile = func(m *deviceModel, q uint32) {
				if q == netTransmitQ {
					tc.act(hostileOn(m, q))
				}
			}
			for i := 0; i < 2; i++ {
				// the second Transmit meets the malformed used element
				f := frame(300, byte(0x90+i))
				queued = append(queued, f)
				noPanic(t, "Transmit", func() { err = n.Transmit(f) })
				if err != nil {
					t.Fatalf("frame %d to the hostile device: %v: an innocent frame was dropped", i, err)
				}
			}
			if n.TxErrors == 0 {
				t.Fatal("the malformed used element was not counted")
			}
			// what the device sends once it behaves is what was queued,
			// each frame once: no buffer was reused while the device
			// held it
			m.hostile = nil
			m.sent = nil
			f := frame(64, 0x42)
			queued = append(queued, f)
			if err := n.Transmit(f); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, s := range m.sent {
				p := string(s[m.netHeader():])
				if seen[p] {
					t.Fatalf("frame %x... sent twice: its buffer was reused while the device held it", p[:4])
				}
				seen[p] = true
				found := false
				for _, q := range queued {
					found = found || string(q) == p
				}
				if !found {
					t.Fatalf("device sent a frame nobody queued: %x...", p[:4])
				}
			}
			netRecovers(t, n, m)
		})
	}
}

// A device can only return what it was given: a bogus element never frees
// a buffer the device still holds, a real buffer returned twice is taken
// back once, a length over the buffer gives the buffer back without its
// contents, and a used index further ahead than the buffers in flight is
// skipped whole.
func TestHostileQueueAccounting(t *testing.T) {
	mem := make([]byte, 8192)
	var q Queue
	if err := q.Init(mem[:4096], base, 4); err != nil {
		t.Fatal(err)
	}
	h := hostileDevice{m: newModel(mem, base), q: &queueState{num: 4}}
	h.q.desc, h.q.avail, h.q.used = q.addrs()
	a, _ := q.Post(base+4096, 64, true)
	b, _ := q.Post(base+4096+64, 64, true)
	used := func() string {
		var id uint16
		var w uint32
		var ok bool
		var err error
		noPanic(t, "Used", func() { id, w, ok, err = q.Used() })
		switch {
		case !ok:
			return "none"
		case err == nil:
			return fmt.Sprintf("%d:%d", id, w)
		case errors.Is(err, ErrBadUsed):
			return "bad"
		}
		return fmt.Sprintf("%d:%v", id, err)
	}
	var got []string
	h.push(uint32(a), 8)
	got = append(got, used())
	h.push(uint32(a), 8) // again
	got = append(got, used())
	h.push(4, 8) // beyond the queue
	got = append(got, used())
	h.push(uint32(b), 65) // over its buffer
	got = append(got, used(), used())
	want := fmt.Sprintf("[%d:8 bad bad %d:%v none]", a, b, ErrUsedLength)
	if fmt.Sprint(got) != want {
		t.Fatalf("used elements read as %v, want %v", got, want)
	}
	if q.Free() != 4 {
		t.Fatalf("%d descriptors free, want 4", q.Free())
	}

	// two in flight, three elements published: the batch is skipped,
	// and neither buffer is taken back
	a, _ = q.Post(base+4096, 64, true)
	b, _ = q.Post(base+4096+64, 64, true)
	h.push(uint32(a), 8)
	h.push(uint32(b), 8)
	h.push(uint32(a), 8)
	if got := fmt.Sprintln(used(), used()); got != "bad none\n" {
		t.Fatalf("three used elements for two buffers read as %s, want bad none", got)
	}
	if q.Free() != 2 {
		t.Fatalf("%d descriptors free, want 2: the device still holds two", q.Free())
	}
}

// BenchmarkQueueRoundTrip prices the driver's side of one buffer: Post,
// then Used checking the device's answer against the shadow.
func BenchmarkQueueRoundTrip(b *testing.B) {
	mem := make([]byte, 8192)
	var q Queue
	if err := q.Init(mem[:4096], base, 8); err != nil {
		b.Fatal(err)
	}
	h := hostileDevice{m: newModel(mem, base), q: &queueState{num: 8}}
	h.q.desc, h.q.avail, h.q.used = q.addrs()
	for b.Loop() {
		id, _ := q.Post(base+4096, 64, true)
		h.push(uint32(id), 64)
		if _, _, ok, err := q.Used(); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
