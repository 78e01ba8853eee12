package tis

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/tpmtest"
)

// TestI2CLocalityChange drives two TIS instances, at localities 0 and 2,
// over one I2CRegs in front of the I2C model and swtpm. Over I2C the
// locality is not in the register address: TPM_LOC_SEL selects it (PTP
// v1.04 section 8), so I2CRegs must write LOC_SEL exactly when the
// locality of the next access differs from the selected one, and every
// command must execute at the locality its TIS requested (and
// relinquished after: PTP 6.5.2.3). QEMU's TIS model grants localities
// 0-4, and so does the model. A NACK on LOC_SEL is retried like any
// transaction (DefaultI2CRetries attempts, DefaultI2CGuard apart); when
// every attempt fails the command must fail with ErrNACK at the locality
// request, without touching the registers of a locality it does not hold,
// and the next command selects the locality again.
func TestI2CLocalityChange(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	clock := newClock()
	m := newI2CModel(sw.OpenT(t), clock)
	m.tis.burst = 32
	f := &faultyI2C{bus: m}
	r := &I2CRegs{Bus: f, Now: clock.Now, Sleep: clock.Sleep}
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	tis := func(loc uint8) *TIS {
		d := &TIS{Regs: r, Locality: loc, Now: clock.Now, Sleep: clock.Sleep, TimeoutScale: 0.05, CommandTimeout: 200 * time.Millisecond}
		if err := d.Init(); err != nil {
			t.Fatalf("TIS Init at locality %d: %v", loc, err)
		}
		return d
	}
	locSel := func() []byte {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.locSel)
	}
	wantLocSel := []byte{0} // Init selects locality 0
	check := func(what string) {
		t.Helper()
		if got := locSel(); !slices.Equal(got, wantLocSel) {
			t.Fatalf("%s: LOC_SEL writes %v, want %v", what, got, wantLocSel)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.tis.active {
			t.Errorf("%s: locality %d still active: not relinquished", what, m.tis.loc)
		}
		if len(m.tis.ignored) > 0 {
			t.Errorf("%s: the driver wrote registers of a locality it did not hold: %v", what, m.tis.ignored)
		}
	}
	send := func(d *TIS, what string) {
		t.Helper()
		rsp, err := d.Send(getRandom())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if rc := binary.BigEndian.Uint32(rsp[6:10]); rc != 0 || len(rsp) != 20 {
			t.Fatalf("%s: GetRandom rc %#x, %d bytes", what, rc, len(rsp))
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if got := m.tis.execLoc[len(m.tis.execLoc)-1]; got != uint32(d.Locality) {
			t.Fatalf("%s: the command executed at locality %d, want %d", what, got, d.Locality)
		}
	}

	d0 := tis(0)
	check("Init at locality 0")
	if err := tpmtest.Startup(d0); err != nil {
		t.Fatal(err)
	}
	send(d0, "locality 0")
	send(d0, "locality 0 again")
	check("two commands at locality 0")

	d2 := tis(2)
	wantLocSel = append(wantLocSel, 2)
	check("Init at locality 2")
	send(d2, "locality 2")
	send(d2, "locality 2 again")
	check("two commands at locality 2")

	send(d0, "back to locality 0")
	wantLocSel = append(wantLocSel, 0)
	check("back to locality 0")
	send(d2, "locality 2, third")
	wantLocSel = append(wantLocSel, 2)
	check("locality 2, third")

	// A transient NACK on LOC_SEL: retried, the change happens once.
	f.mu.Lock()
	f.nackLocSel, f.locSelTx = DefaultI2CRetries-1, 0
	f.mu.Unlock()
	send(d0, "locality 0 after transient LOC_SEL NACKs")
	wantLocSel = append(wantLocSel, 0)
	check("locality 0 after transient LOC_SEL NACKs")
	if f.locSelTx != DefaultI2CRetries {
		t.Errorf("%d LOC_SEL attempts, want %d (%d NACKs, then the write)", f.locSelTx, DefaultI2CRetries, DefaultI2CRetries-1)
	}

	// Every attempt NACKed: the command fails at the locality request.
	f.mu.Lock()
	f.nackLocSel, f.locSelTx = DefaultI2CRetries, 0
	f.mu.Unlock()
	_, err := d2.Send(getRandom())
	if !errors.Is(err, ErrNACK) || !strings.Contains(err.Error(), "request locality 2") {
		t.Fatalf("Send with LOC_SEL NACKed %d times: %v, want ErrNACK at the request of locality 2", DefaultI2CRetries, err)
	}
	m.mu.Lock()
	ignored := slices.Clone(m.tis.ignored)
	m.mu.Unlock()
	if len(ignored) > 0 {
		t.Errorf("after the failed LOC_SEL the driver wrote registers of a locality it did not hold: %v", ignored)
	}
	if m.tis.active {
		t.Errorf("locality %d left active", m.tis.loc)
	}
	if got := locSel(); !slices.Equal(got, wantLocSel) {
		t.Errorf("LOC_SEL writes %v after the failure, want %v (none got through)", got, wantLocSel)
	}
	// The bus is back: the next command selects locality 2 and works.
	send(d2, "locality 2 after the failure")
	wantLocSel = append(wantLocSel, 2)
	check("locality 2 after the failure")

	// A locality the TPM does not grant (a TPM need not implement
	// localities 1-4 on I2C): the request times out (TIMEOUT_A) and the
	// other localities go on working.
	m.mu.Lock()
	m.tis.refuse = 1 << 3
	m.mu.Unlock()
	d3 := &TIS{Regs: r, Locality: 3, Now: clock.Now, Sleep: clock.Sleep, TimeoutScale: 0.05}
	if err := d3.Init(); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "request locality 3") {
		t.Errorf("Init at a locality never granted: %v, want ErrTimeout requesting locality 3", err)
	}
	wantLocSel = append(wantLocSel, 3)
	check("locality 3 refused")
	send(d0, "locality 0 after locality 3 was refused")
	wantLocSel = append(wantLocSel, 0)
	check("locality 0 after locality 3 was refused")
	checkGuard(t, m)
}
