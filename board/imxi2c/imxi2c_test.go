package imxi2c

import (
	"bytes"
	"errors"
	"testing"
)

func newMaster(c *controller) *Master {
	clk := &fakeClock{}
	m := &Master{Regs: c, Now: clk.now}
	m.Init()
	return m
}

// TestTx checks each kind of transaction against the controller model:
// the bus events the register accesses produce, the data moved, and that
// the master ends each read with a NACK and a STOP and clocks no byte
// more.
func TestTx(t *testing.T) {
	tests := []struct {
		name  string
		w     []byte
		nread int
		trace string
		read  []byte
	}{
		{name: "probe", trace: "S A5c+ P"},
		{name: "register write", w: []byte{0x00, 0x01}, trace: "S A5c+ W00+ W01+ P"},
		{name: "register address then read with repeated start", w: []byte{0x30}, nread: 4,
			trace: "S A5c+ W30+ Sr A5d+ R30+ R31+ R32+ R33- P", read: []byte{0x30, 0x31, 0x32, 0x33}},
		{name: "one-byte read", w: []byte{0x04}, nread: 1, trace: "S A5c+ W04+ Sr A5d+ R04- P", read: []byte{0x04}},
		{name: "two-byte read", w: []byte{0x48}, nread: 2, trace: "S A5c+ W48+ Sr A5d+ R48+ R49- P", read: []byte{0x48, 0x49}},
		{name: "read without register address", nread: 2, trace: "S A5d+ R00+ R01- P", read: []byte{0x00, 0x01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := &regFile{}
			for i := range dev.mem {
				dev.mem[i] = byte(i)
			}
			c := newController(map[uint8]device{0x2e: dev})
			m := newMaster(c)
			r := make([]byte, tc.nread)
			if err := m.Tx(0x2e, tc.w, r); err != nil {
				t.Fatalf("Tx: %v (trace %s)", err, c)
			}
			if got := c.String(); got != tc.trace {
				t.Errorf("bus trace\n got %s\nwant %s", got, tc.trace)
			}
			if tc.nread > 0 && !bytes.Equal(r, tc.read) {
				t.Errorf("read % x, want % x", r, tc.read)
			}
			if len(c.violations) > 0 {
				t.Errorf("protocol violations: %q", c.violations)
			}
			if c.i2sr&I2SR_IBB != 0 {
				t.Error("bus left busy")
			}
		})
	}
}

// TestWriteStores checks the bytes written reach the device.
func TestWriteStores(t *testing.T) {
	dev := &regFile{}
	c := newController(map[uint8]device{0x2e: dev})
	m := newMaster(c)
	if err := m.Tx(0x2e, []byte{0x40, 1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dev.mem[0x40:0x43], []byte{1, 2, 3}) {
		t.Errorf("device holds % x", dev.mem[0x40:0x43])
	}
}

// TestFaults checks a NACK is told apart from other failures (ErrNACK,
// which the TIS layer retries), that every failure releases the bus, and
// that a stuck bus fails within the timeout.
func TestFaults(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*controller, *regFile)
		addr  uint8
		w     []byte
		nread int
		want  error
		trace string
	}{
		{name: "no device at the address", addr: 0x2f, w: []byte{0x30}, nread: 4, want: ErrNACK, trace: "S A5e- P"},
		{name: "no device, controller raises no interrupt on NACK", addr: 0x2f,
			setup: func(c *controller, _ *regFile) { c.silentNACK = true }, want: ErrNACK, trace: "S A5e- P"},
		{name: "data byte not acknowledged (busy TPM)", addr: 0x2e, w: []byte{0x24, 0x80},
			setup: func(_ *controller, d *regFile) { d.nackAt = 2 }, want: ErrNACK, trace: "S A5c+ W24+ W80- P"},
		{name: "bus stuck", addr: 0x2e, w: []byte{0x30},
			setup: func(c *controller, _ *regFile) { c.stuck = true }, want: ErrTimeout, trace: "S P"},
		{name: "arbitration lost", addr: 0x2e, w: []byte{0x30},
			setup: func(c *controller, _ *regFile) { c.loseArbitration = true }, want: ErrArbitration, trace: "S lost"},
		{name: "not a 7-bit address", addr: 0x80, trace: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := &regFile{}
			c := newController(map[uint8]device{0x2e: dev})
			if tc.setup != nil {
				tc.setup(c, dev)
			}
			m := newMaster(c)
			err := m.Tx(tc.addr, tc.w, make([]byte, tc.nread))
			if err == nil {
				t.Fatalf("Tx succeeded (trace %s)", c)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if tc.want != ErrNACK && errors.Is(err, ErrNACK) {
				t.Errorf("error %v claims a NACK", err)
			}
			if got := c.String(); got != tc.trace {
				t.Errorf("bus trace\n got %s\nwant %s", got, tc.trace)
			}
			if c.i2cr&I2CR_MSTA != 0 {
				t.Error("master mode left on")
			}
			if len(c.violations) > 0 {
				t.Errorf("protocol violations: %q", c.violations)
			}
		})
	}
}

// TestNextAfterNACK checks a transaction after a NACKed one works: the
// failure left the controller usable.
func TestNextAfterNACK(t *testing.T) {
	dev := &regFile{}
	dev.mem[0x48] = 0x1a
	c := newController(map[uint8]device{0x2e: dev})
	m := newMaster(c)
	if err := m.Tx(0x2f, nil, nil); !errors.Is(err, ErrNACK) {
		t.Fatalf("probe of an empty address: %v", err)
	}
	r := make([]byte, 1)
	if err := m.Tx(0x2e, []byte{0x48}, r); err != nil || r[0] != 0x1a {
		t.Fatalf("read after a NACK: % x, %v (trace %s)", r, err, c)
	}
}
