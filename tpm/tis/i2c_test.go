package tis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/tpmtest"
)

// newI2CTIS puts the TIS over I2CRegs over bus, sharing clock.
func newI2CTIS(t testing.TB, bus I2C, clock *fakeClock, csum bool) (*TIS, *I2CRegs) {
	t.Helper()
	r := &I2CRegs{Bus: bus, Checksum: csum, Now: clock.Now, Sleep: clock.Sleep}
	if err := r.Init(); err != nil {
		t.Fatalf("I2C Init: %v", err)
	}
	d := &TIS{Regs: r, Now: clock.Now, Sleep: clock.Sleep, TimeoutScale: 0.05, CommandTimeout: 200 * time.Millisecond}
	if err := d.Init(); err != nil {
		t.Fatalf("TIS Init: %v", err)
	}
	return d, r
}

func checkGuard(t *testing.T, m *i2cModel) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.violations) > 0 {
		t.Errorf("%d guard-time violations, first: %s", len(m.violations), m.violations[0])
	}
}

// TestI2CConformance runs the conformance suite through the TIS over the
// TCG I2C interface model in front of swtpm, with and without checksums.
func TestI2CConformance(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	for _, csum := range []bool{false, true} {
		name := "no checksum"
		if csum {
			name = "checksum"
		}
		t.Run(name, func(t *testing.T) {
			tpmtest.Run(t, func(t *testing.T) transport.TPM {
				clock := newClock()
				m := newI2CModel(sw.OpenT(t), clock)
				m.tis.burst = 64
				d, _ := newI2CTIS(t, m, clock, csum)
				t.Cleanup(func() { checkGuard(t, m) })
				return d
			})
		})
	}
}

// TestMeasuredBootOverI2C runs stage 0's and the stick's measurements and a
// quote through the TIS over I2C (checksums on).
func TestMeasuredBootOverI2C(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	clock := newClock()
	m := newI2CModel(sw.OpenT(t), clock)
	d, _ := newI2CTIS(t, m, clock, true)
	s0, err := measure.New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s0.MeasureImage([]byte("image"), "image"); err != nil {
		t.Fatal(err)
	}
	st, err := measure.Resume(d, mustHandoff(t, s0), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &attest.Attester{TPM: d}
	defer a.Close()
	ev, err := a.Attest([]byte("nonce"), []byte("key"), st.Log(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, v := range st.PCRs() {
		if !bytes.Equal(ev.PCRs[p], v[:]) {
			t.Errorf("PCR %d read over I2C %x, log replays %x", p, ev.PCRs[p], v)
		}
	}
	checkGuard(t, m)
}

func mustHandoff(t *testing.T, s0 *measure.Measurer) []byte {
	t.Helper()
	if err := s0.Separator(measure.HandoffPCRs...); err != nil {
		t.Fatal(err)
	}
	h, err := s0.Handoff()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestI2CGuardTime: the driver keeps the guard time the TPM announces; the
// model fails the test on any two transactions closer than that.
func TestI2CGuardTime(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	for _, g := range []time.Duration{0, 30 * time.Microsecond, 250 * time.Microsecond, 255 * time.Microsecond} {
		t.Run(g.String(), func(t *testing.T) {
			clock := newClock()
			m := newI2CModel(sw.OpenT(t), clock)
			m.guard = g
			d, r := newI2CTIS(t, m, clock, true)
			if r.Guard() != g {
				t.Errorf("guard read from I2C_INTERFACE_CAPABILITY %v, model announces %v", r.Guard(), g)
			}
			if err := tpmtest.Startup(d); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Send(getRandom()); err != nil {
				t.Fatal(err)
			}
			checkGuard(t, m)
		})
	}
}

// TestI2CFaults injects NACKs and corrupted FIFO data (faultyI2C).
func TestI2CFaults(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	setup := func(t *testing.T, csum bool) (*TIS, *faultyI2C, *i2cModel) {
		clock := newClock()
		m := newI2CModel(sw.OpenT(t), clock)
		m.tis.burst = 8
		f := &faultyI2C{bus: m}
		d, _ := newI2CTIS(t, f, clock, csum)
		if err := tpmtest.Startup(d); err != nil {
			t.Fatal(err)
		}
		return d, f, m
	}
	t.Run("transient NACK retried", func(t *testing.T) {
		d, f, m := setup(t, false)
		f.nack = DefaultI2CRetries - 1
		rsp, err := d.Send(getRandom())
		if err != nil {
			t.Fatalf("after %d NACKs: %v", DefaultI2CRetries-1, err)
		}
		if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 || len(rsp) != 20 {
			t.Errorf("GetRandom: rc %#x, %d bytes", rc, len(rsp))
		}
		if f.nacked != DefaultI2CRetries-1 {
			t.Errorf("%d NACKs injected", f.nacked)
		}
		checkGuard(t, m)
	})
	t.Run("persistent NACK", func(t *testing.T) {
		d, f, _ := setup(t, false)
		f.nackAll = true
		_, err := d.Send(getRandom())
		if !errors.Is(err, ErrNACK) {
			t.Fatalf("Send on a NACKing bus: %v, want ErrNACK", err)
		}
		f.nackAll = false
		if _, err := d.Send(getRandom()); err != nil {
			t.Errorf("Send after the bus recovered: %v", err)
		}
	})
	t.Run("corrupt data retried", func(t *testing.T) {
		d, f, m := setup(t, true)
		f.corrupt = 1
		rsp, err := d.Send(getRandom())
		if err != nil {
			t.Fatalf("one corrupted FIFO read: %v", err)
		}
		if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 || len(rsp) != 20 {
			t.Errorf("GetRandom: rc %#x, %d bytes", rc, len(rsp))
		}
		if f.corrupt != 0 {
			t.Errorf("corruption not injected")
		}
		checkGuard(t, m)
	})
	t.Run("corrupt command rewritten", func(t *testing.T) {
		d, f, m := setup(t, true)
		f.corruptW = 2
		rsp, err := d.Send(getRandom())
		if err != nil {
			t.Fatalf("two corrupted FIFO writes: %v", err)
		}
		if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 || len(rsp) != 20 {
			t.Errorf("GetRandom: rc %#x, %d bytes", rc, len(rsp))
		}
		if f.corruptW != 0 {
			t.Errorf("corruption not injected")
		}
		checkGuard(t, m)
	})
	t.Run("persistent command corruption", func(t *testing.T) {
		d, f, _ := setup(t, true)
		f.corruptW = 1 << 20
		_, err := d.Send(getRandom())
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("Send with every FIFO write corrupted: %v, want ErrChecksum", err)
		}
		f.corruptW = 0
		if _, err := d.Send(getRandom()); err != nil {
			t.Errorf("Send after the bus recovered: %v", err)
		}
	})
	t.Run("persistent corruption", func(t *testing.T) {
		d, f, _ := setup(t, true)
		f.corrupt = 1 << 20
		_, err := d.Send(getRandom())
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("Send with every FIFO read corrupted: %v, want ErrChecksum", err)
		}
	})
}

// hostileI2C answers every read with bytes from a fuzzer's stream and NACKs
// once the stream is exhausted.
type hostileI2C struct{ data []byte }

func (h *hostileI2C) Tx(addr uint8, w, r []byte) error {
	if len(r) > len(h.data) {
		return ErrNACK
	}
	copy(r, h.data)
	h.data = h.data[len(r):]
	return nil
}

// FuzzI2CResponse drives Init and a command against a hostile I2C device
// (bogus capability, burst counts, status bits, FIFO bytes, checksums): the
// driver must not panic, and a response it accepts must be as long as its
// header says and within MaxResponse.
func FuzzI2CResponse(f *testing.F) {
	okSTS := func(bits uint32, burst uint32) []byte {
		return binary.LittleEndian.AppendUint32(nil, bits|STS_stsValid|STS_tpmFamily_TPM20<<STS_tpmFamily_shift|burst<<STS_burstCount_shift)
	}
	var seed []byte
	seed = binary.LittleEndian.AppendUint32(seed, 0)                 // capability: no guard
	seed = binary.LittleEndian.AppendUint32(seed, 0x00011014)        // DID_VID
	seed = append(seed, ACCESS_tpmRegValidSts|ACCESS_activeLocality) // ACCESS
	seed = append(seed, okSTS(0, 0)...)
	seed = append(seed, 1) // RID
	f.Add(seed)
	seed = append(seed, okSTS(STS_commandReady, 0xffff)...)
	seed = append(seed, okSTS(STS_dataAvail, 0)...)
	f.Add(seed)
	f.Add(recordSession(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		clock := newClock()
		r := &I2CRegs{Bus: &hostileI2C{data: data}, Checksum: len(data)%2 == 0, Now: clock.Now, Sleep: clock.Sleep}
		if r.Init() != nil {
			return
		}
		d := &TIS{Regs: r, Now: clock.Now, Sleep: clock.Sleep, TimeoutScale: 0.001, CommandTimeout: time.Millisecond, MaxResponse: 512}
		if d.Init() != nil {
			return
		}
		rsp, err := d.Send(getRandom())
		if err != nil {
			return
		}
		if len(rsp) < headerSize || len(rsp) > d.MaxResponse || int(binary.BigEndian.Uint32(rsp[2:6])) != len(rsp) {
			t.Fatalf("accepted response of %d bytes, header says %d", len(rsp), binary.BigEndian.Uint32(rsp[2:6]))
		}
	})
}

// recorder passes transactions to bus and records every byte read.
type recorder struct {
	bus  I2C
	read []byte
}

func (r *recorder) Tx(addr uint8, w, rd []byte) error {
	err := r.bus.Tx(addr, w, rd)
	r.read = append(r.read, rd...)
	return err
}

// recordSession is the byte stream an I2C model in front of swtpm returns
// for FuzzI2CResponse's session (checksums on), a seed that reaches the
// response parsing.
func recordSession(f *testing.F) []byte {
	sw := swtpmtest.Start(f, swtpmtest.Options{})
	clock := newClock()
	m := newI2CModel(sw.OpenT(f), clock)
	m.tis.burst = 16
	rec := &recorder{bus: m}
	d, _ := newI2CTIS(f, rec, clock, true)
	if _, err := d.Send(getRandom()); err != nil {
		f.Fatal(err)
	}
	if len(rec.read)%2 != 0 {
		rec.read = append(rec.read, 0)
	}
	return rec.read
}

// benchSend measures d.Send of GetRandom(8) against the model in front of
// swtpm; swtpm's own time is in both figures.
func benchSend(b *testing.B, d *TIS) {
	if err := tpmtest.Startup(d); err != nil {
		b.Fatal(err)
	}
	cmd := getRandom()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Send(cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendMMIO is the TIS over the MMIO register model.
func BenchmarkSendMMIO(b *testing.B) {
	sw := swtpmtest.Start(b, swtpmtest.Options{})
	clock := newClock()
	m := newModel(sw.OpenT(b))
	m.burst = 64
	d := &TIS{Regs: m, Now: clock.Now, Sleep: clock.Sleep}
	if err := d.Init(); err != nil {
		b.Fatal(err)
	}
	benchSend(b, d)
}

// BenchmarkSendI2C is the same command over the I2C model (checksums on or
// off). The fake clock makes guard times free here: guard-µs/op reports
// the guard time a real bus would spend on top, bus-tx/op the transactions
// (each a few hundred µs of 100-400 kHz I2C on hardware, not measured).
func BenchmarkSendI2C(b *testing.B) {
	sw := swtpmtest.Start(b, swtpmtest.Options{})
	for _, csum := range []bool{false, true} {
		name := "checksum=off"
		if csum {
			name = "checksum=on"
		}
		b.Run(name, func(b *testing.B) {
			clock := newClock()
			m := newI2CModel(sw.OpenT(b), clock)
			m.guard = DefaultI2CGuard - 5*time.Microsecond
			m.tis.burst = 64
			d, r := newI2CTIS(b, m, clock, csum)
			d.TimeoutScale, d.CommandTimeout = 0, 0
			tx0, t0 := r.Transactions(), clock.Now()
			benchSend(b, d)
			b.ReportMetric(float64(r.Transactions()-tx0)/float64(b.N), "bus-tx/op")
			b.ReportMetric(float64(clock.Now().Sub(t0)/time.Microsecond)/float64(b.N), "guard-µs/op")
		})
	}
}

// TestI2CNoDevice: nothing acknowledges at the address (persistent NACK),
// and a device whose I2C_INTERFACE_CAPABILITY has its reserved bit set.
func TestI2CNoDevice(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	clock := newClock()
	m := newI2CModel(sw.OpenT(t), clock)
	r := &I2CRegs{Bus: m, Addr: DefaultI2CAddr + 1, Now: clock.Now, Sleep: clock.Sleep}
	if err := r.Init(); !errors.Is(err, ErrNACK) {
		t.Errorf("Init at an empty address: %v, want ErrNACK", err)
	}
	if n := r.Transactions(); n != DefaultI2CRetries {
		t.Errorf("%d attempts, want %d", n, DefaultI2CRetries)
	}
	checkGuard(t, m)
	ones := &hostileI2C{data: bytes.Repeat([]byte{0xff}, 64)}
	r = &I2CRegs{Bus: ones, Now: clock.Now, Sleep: clock.Sleep}
	if err := r.Init(); !errors.Is(err, ErrNoTPM) {
		t.Errorf("Init with a capability of all ones: %v, want ErrNoTPM", err)
	}
}
