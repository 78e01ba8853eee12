package virtio

import (
	"bytes"
	"errors"
	"testing"
)

func newNet(t *testing.T, tweak func(*deviceModel)) (*Net, *deviceModel, error) {
	t.Helper()
	const size = 8
	mem := make([]byte, NetMemory(size))
	m := newModel(mem, base)
	m.id = IDNetwork
	m.offered = FeatureVersion1 | NetFeatureMAC | NetFeatureStatus | 1<<0 /* CSUM, not wanted */
	m.config = []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56, netStatusLinkUp, 0}
	if tweak != nil {
		tweak(m)
	}
	n := &Net{}
	return n, m, n.Init(m, mem, base, size)
}

func frame(n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = seed + byte(i)
	}
	return f
}

func TestNetInit(t *testing.T) {
	tests := []struct {
		name    string
		tweak   func(*deviceModel)
		wantErr error
		// run only on a legacy device
		legacyOnly bool
	}{
		{"ok", nil, nil, false},
		{"not a network device", func(m *deviceModel) { m.id = IDEntropy }, ErrNoDevice, false},
		{"no MAC feature", func(m *deviceModel) { m.offered &^= NetFeatureMAC }, ErrNoMAC, false},
		{"queue too small", func(m *deviceModel) { m.maxQueue = 2 }, ErrQueueSize, false},
		{"no queue", func(m *deviceModel) { m.maxQueue = 0 }, ErrQueueSize, false},
		{"huge QueueNumMax", func(m *deviceModel) { m.maxQueue = 0xffffffff }, nil, false},
		{"legacy without ANY_LAYOUT", func(m *deviceModel) { m.offered &^= FeatureAnyLayout }, ErrNoAnyLayout, true},
	}
	for _, tr := range transports {
		for _, tc := range tests {
			if tc.legacyOnly && tr.tweak == nil {
				continue
			}
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				n, m, err := newNet(t, both(tr.tweak, tc.tweak))
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Init = %v, want %v", err, tc.wantErr)
				}
				if m.guestErrors != 0 {
					t.Fatalf("%d accesses to registers of the other interface", m.guestErrors)
				}
				if err != nil {
					return
				}
				if got := n.MAC(); got != [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56} {
					t.Fatalf("MAC %x", got)
				}
				want := FeatureVersion1 | NetFeatureMAC | NetFeatureStatus
				if m.legacy() {
					want = FeatureAnyLayout | NetFeatureMAC | NetFeatureStatus
				}
				if m.accepted != want {
					t.Fatalf("accepted features %#x, want %#x: offloads must not be negotiated", m.accepted, want)
				}
				if m.legacy() && m.status&StatusFeaturesOK != 0 {
					t.Fatal("FEATURES_OK set on a legacy device (spec 3.1.2 has no such step)")
				}
				if m.status&StatusDriverOK == 0 {
					t.Fatal("device not set DRIVER_OK")
				}
				for i, q := range m.queues {
					if q.num != 8 || q.desc%LegacyPageSize != 0 && m.legacy() {
						t.Fatalf("queue %d: num %d at %#x", i, q.num, q.desc)
					}
				}
				if !n.LinkUp() {
					t.Fatal("link down")
				}
			})
		}
	}
}

func TestNetTransmit(t *testing.T) { forTransports(t, testNetTransmit) }

func testNetTransmit(t *testing.T, transport func(*deviceModel)) {
	n, m, err := newNet(t, transport)
	if err != nil {
		t.Fatal(err)
	}
	// more frames than descriptors: buffers must be reclaimed
	var want [][]byte
	for i := 0; i < 20; i++ {
		f := frame(60+i*70, byte(i))
		want = append(want, f)
		if err := n.Transmit(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if len(m.sent) != len(want) {
		t.Fatalf("device got %d frames, want %d", len(m.sent), len(want))
	}
	for i, got := range m.sent {
		if !bytes.Equal(got[:m.netHeader()], make([]byte, m.netHeader())) {
			t.Fatalf("frame %d: header %x, want zeros", i, got[:m.netHeader()])
		}
		if !bytes.Equal(got[m.netHeader():], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if err := n.Transmit(make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("oversized frame: %v", err)
	}
}

func TestNetTransmitBusy(t *testing.T) { forTransports(t, testNetTransmitBusy) }

func testNetTransmitBusy(t *testing.T, transport func(*deviceModel)) {
	n, _, err := newNet(t, both(transport, func(m *deviceModel) { m.silent = true }))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := n.Transmit(frame(64, 0)); err != nil {
			t.Fatal(err)
		}
	}
	err = n.Transmit(frame(64, 0))
	if !errors.Is(err, ErrTxBusy) {
		t.Fatalf("ninth frame to a silent device: %v, want ErrTxBusy", err)
	}
	if b, ok := err.(interface{ Busy() bool }); !ok || !b.Busy() {
		t.Fatal("ErrTxBusy does not say it is transient")
	}
	if ErrFrameSize.Busy() {
		t.Fatal("an oversized frame reads as transient")
	}
}

func TestNetReceive(t *testing.T) { forTransports(t, testNetReceive) }

func testNetReceive(t *testing.T, transport func(*deviceModel)) {
	n, m, err := newNet(t, transport)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxFrame)
	if _, ok, err := n.Receive(buf); ok || err != nil {
		t.Fatalf("Receive on an idle link = %v, %v", ok, err)
	}
	// more frames than receive buffers: each must be reposted
	for i := 0; i < 30; i++ {
		f := frame(60+i*40, byte(i))
		if !m.deliver(f) {
			t.Fatalf("frame %d: no receive buffer posted", i)
		}
		l, ok, err := n.Receive(buf)
		if err != nil || !ok {
			t.Fatalf("frame %d: Receive = %v, %v", i, ok, err)
		}
		if !bytes.Equal(buf[:l], f) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if n.RxFrames != 30 {
		t.Fatalf("RxFrames %d", n.RxFrames)
	}
}

func TestNetReceiveFaults(t *testing.T) { forTransports(t, testNetReceiveFaults) }

func testNetReceiveFaults(t *testing.T, transport func(*deviceModel)) {
	t.Run("runt shorter than the header is dropped", func(t *testing.T) {
		n, m, err := newNet(t, transport)
		if err != nil {
			t.Fatal(err)
		}
		q := &m.queues[0]
		id, _, length, _ := m.next(q)
		m.complete(q, id, length, 4)
		if !m.deliver(frame(64, 1)) {
			t.Fatal("no buffer")
		}
		buf := make([]byte, MaxFrame)
		l, ok, err := n.Receive(buf)
		if !ok || err != nil || !bytes.Equal(buf[:l], frame(64, 1)) {
			t.Fatalf("frame after a runt: %v %v", ok, err)
		}
		if n.RxErrors != 1 {
			t.Fatalf("RxErrors %d, want 1", n.RxErrors)
		}
	})
	t.Run("frame larger than the caller's buffer is dropped", func(t *testing.T) {
		n, m, err := newNet(t, transport)
		if err != nil {
			t.Fatal(err)
		}
		m.deliver(frame(1000, 0))
		if _, ok, _ := n.Receive(make([]byte, 100)); ok {
			t.Fatal("oversized frame delivered")
		}
		if n.RxErrors != 1 {
			t.Fatalf("RxErrors %d, want 1", n.RxErrors)
		}
	})
	t.Run("used element beyond the queue", func(t *testing.T) {
		n, m, err := newNet(t, transport)
		if err != nil {
			t.Fatal(err)
		}
		m.badID = true
		m.deliver(frame(60, 0))
		if _, ok, err := n.Receive(make([]byte, MaxFrame)); ok || !errors.Is(err, ErrBadUsed) {
			t.Fatalf("Receive = %v, %v; want ErrBadUsed", ok, err)
		}
	})
}

func BenchmarkNetRoundTrip(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) { benchmarkNetRoundTrip(b, tr.tweak) })
	}
}

func benchmarkNetRoundTrip(b *testing.B, transport func(*deviceModel)) {
	const size = 8
	mem := make([]byte, NetMemory(size))
	m := newModel(mem, base)
	m.id = IDNetwork
	m.offered = FeatureVersion1 | NetFeatureMAC
	m.config = make([]byte, 8)
	if transport != nil {
		transport(m)
	}
	n := &Net{}
	if err := n.Init(m, mem, base, size); err != nil {
		b.Fatal(err)
	}
	f := frame(1514, 0)
	buf := make([]byte, MaxFrame)
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if err := n.Transmit(f); err != nil {
			b.Fatal(err)
		}
		m.deliver(f)
		if _, ok, _ := n.Receive(buf); !ok {
			b.Fatal("lost")
		}
		m.sent = m.sent[:0]
	}
}
