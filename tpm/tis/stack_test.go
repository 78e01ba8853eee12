package tis

import (
	"testing"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// TestMeasuredBootOverTIS runs stage 0's and the stick's measurements and a
// quote through the TIS driver (register model in front of swtpm), the path
// the firmware takes on QEMU.
func TestMeasuredBootOverTIS(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	m := newModel(sw.OpenT(t))
	m.burst = 64
	d := &TIS{Regs: m}
	if err := d.Init(); err != nil {
		t.Fatal(err)
	}
	s0, err := measure.New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s0.MeasureImage([]byte("image"), "image"); err != nil {
		t.Fatal(err)
	}
	if err := s0.Separator(measure.HandoffPCRs...); err != nil {
		t.Fatal(err)
	}
	h, err := s0.Handoff()
	if err != nil {
		t.Fatal(err)
	}
	st, err := measure.Resume(d, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MeasureConfig([]byte("cfg")); err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(); err != nil {
		t.Fatal(err)
	}
	a := &attest.Attester{TPM: d}
	defer a.Close()
	ev, err := a.Attest([]byte("nonce"), []byte("key"), st.Log(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, v := range st.PCRs() {
		if string(ev.PCRs[p]) != string(v[:]) {
			t.Errorf("PCR %d read over TIS %x, log replays %x", p, ev.PCRs[p], v)
		}
	}
}
