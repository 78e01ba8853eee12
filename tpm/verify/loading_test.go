package verify

import (
	"testing"

	"github.com/teastick/teastick/tpm/measure"
)

// step is one measurement of a stick's actors: an actor on PCR 9 or 10,
// or a separator (no name).
type step struct {
	pcr  uint32
	name string // "" for a separator
}

// A stick that loads its actors independently measures them as they come
// up: PCR 9 in completion order, open until every boot actor had its first
// try, and retried actors on PCR 10, maybe before PCR 9 closes. The
// verifier accepts that in any order and still refuses CIDs the manifest
// does not allow.
func TestVerifyIndependentLoading(t *testing.T) {
	ca := t.TempDir()
	image := []byte("stick image")
	sep := step{pcr: measure.PCRBootActors}
	for _, tc := range []struct {
		name    string
		steps   []step
		allowed []string
		open    bool
		fail    map[string]loc
	}{
		{name: "PCR 9 open in completion order", steps: []step{{9, "kv"}, {9, "echo"}},
			allowed: []string{"echo", "kv", "retried"}, open: true},
		{name: "retry on PCR 10 before PCR 9 closed", steps: []step{{9, "kv"}, {10, "retried"}, {9, "echo"}, sep},
			allowed: []string{"echo", "kv", "retried"}},
		{name: "retry on PCR 10 after PCR 9 closed", steps: []step{{9, "kv"}, {9, "echo"}, sep, {10, "retried"}},
			allowed: []string{"echo", "kv", "retried"}},
		{name: "retried CID not allowed", steps: []step{{9, "kv"}, {10, "retried"}, {9, "echo"}, sep},
			allowed: []string{"echo", "kv"}, fail: map[string]loc{CheckActor: {10, 15}}},
		{name: "boot CID not allowed while PCR 9 open", steps: []step{{9, "kv"}, {9, "echo"}},
			allowed: []string{"echo", "retried"}, open: true, fail: map[string]loc{CheckActor: {9, 14}}},
		{name: "PCR 9 closed twice", steps: []step{{9, "kv"}, sep, {9, "echo"}, sep},
			allowed: []string{"echo", "kv"}, fail: map[string]loc{CheckActor: {9, 16}, CheckBootFinished: {9, 17}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bootStickSteps(t, ca, image, tc.steps)
			ak := enrol(t, s)
			ck := s.ck // the channel key the stick measured on PCR 9
			nonce := []byte("nonce-0123456789")
			ev, err := s.att.Attest(nonce, ck, s.m.Log(), s.m.PCRs())
			if err != nil {
				t.Fatal(err)
			}
			v := Verify(ev, Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: reference(image, tc.allowed)})
			checkVerdict(t, v, tc.fail)
			if v.BootOpen != tc.open {
				t.Errorf("BootOpen %v, want %v", v.BootOpen, tc.open)
			}
		})
	}
}

type loc struct{ pcr, event int }

// checkVerdict wants v to pass when fail is empty, else to fail with (at
// least) the checks named, at their PCR and event.
func checkVerdict(t *testing.T, v *Verdict, fail map[string]loc) {
	t.Helper()
	if len(fail) == 0 {
		if !v.OK() {
			t.Fatalf("verdict fails:\n%s", v)
		}
		return
	}
	if v.OK() {
		t.Fatalf("verdict passes:\n%s", v)
	}
	for name, l := range fail {
		found := false
		for _, c := range v.Failed() {
			found = found || c.Name == name && c.PCR == l.pcr && c.Event == l.event
		}
		if !found {
			t.Errorf("no failed check %q at PCR %d event %d in:\n%s", name, l.pcr, l.event, v)
		}
	}
}

// bootStickSteps is a stick booted up to its manifest that then measures
// its actors step by step.
func bootStickSteps(t testing.TB, caDir string, image []byte, steps []step) *stick {
	t.Helper()
	s := manifestedStick(t, caDir, image)
	for _, st := range steps {
		var err error
		if st.name == "" {
			err = s.m.Separator(st.pcr)
		} else {
			err = s.m.MeasureActor(st.pcr, measure.Actor{Name: st.name, CID: testCID(t, st.name), Capabilities: []string{"log"}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}
