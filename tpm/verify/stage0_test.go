package verify

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// attestStick enrols s and returns its evidence for a fresh nonce with the
// expectation a verifier holding ref brings.
func attestStick(t *testing.T, s *stick, ref *Reference) (*attest.Evidence, Expect) {
	t.Helper()
	ak := enrol(t, s)
	ck := s.ck // the channel key the stick measured on PCR 9
	nonce := []byte("stage 0 nonce")
	ev, err := s.att.Attest(nonce, ck, s.m.Log(), s.m.PCRs())
	if err != nil {
		t.Fatal(err)
	}
	return ev, Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: ref}
}

// bootWithoutStage0 boots a stick the way stage 0 did before it measured
// itself: the genuine stick image's digest into PCR 4, separators, and
// nothing of stage 0 on PCR 0.
func bootWithoutStage0(t *testing.T, image []byte) *stick {
	t.Helper()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	m, err := measure.New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck := channelKey(t)
	rk, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{m.MeasureImage(image, "teastick test"), m.Separator(measure.HandoffPCRs...),
		m.MeasureConfig(testConfig), m.MeasureKeys(measure.Keys{Channel: ck, Result: rk}), m.MeasureManifest(testManifest),
		m.Separator(measure.PCRConfig), m.Separator(measure.PCRBootActors)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	roots := rootsOf(t, sw)
	att := &attest.Attester{TPM: tpm}
	t.Cleanup(func() { att.Close() })
	return &stick{sw: sw, tpm: tpm, m: m, att: att, roots: roots, ck: ck, rk: rk}
}

// TestVerifyStage0 attests sticks that boot the genuine stick image from
// the genuine stage 0, from another stage 0, and from a stage 0 that does
// not measure itself, and a log forged to name the genuine stage 0.
func TestVerifyStage0(t *testing.T) {
	image := []byte("stick image")
	ref := reference(image, nil)
	otherStage0 := sha256.Sum256([]byte("stage 0 image, built with another VERSION"))

	type want struct {
		check      string
		pcr, event int
		detail     string
	}
	for _, tc := range []struct {
		name string
		boot func(t *testing.T) (*attest.Evidence, Expect)
		want []want // nil: the verdict passes
	}{
		{name: "genuine stage 0", boot: func(t *testing.T) (*attest.Evidence, Expect) {
			return attestStick(t, bootStick(t, "", image), ref)
		}},
		{name: "another stage 0 loads the genuine stick", boot: func(t *testing.T) (*attest.Evidence, Expect) {
			return attestStick(t, bootStickFrom(t, "", otherStage0, image), ref)
		}, want: []want{{CheckStage0, 0, 0, "the release names stage 0 sha256:"}}},
		{name: "stage 0 does not measure itself", boot: func(t *testing.T) (*attest.Evidence, Expect) {
			return attestStick(t, bootWithoutStage0(t, image), ref)
		}, want: []want{{CheckStage0, 0, -1, "stage 0 did not measure itself: PCR 0 begins with EV_SEPARATOR"}}},
		{name: "log forged to name the genuine stage 0", boot: func(t *testing.T) (*attest.Evidence, Expect) {
			ev, exp := attestStick(t, bootStickFrom(t, "", otherStage0, image), ref)
			log, err := eventlog.Parse(ev.EventLog)
			if err != nil {
				t.Fatal(err)
			}
			log.Events[0].Digest = ref.Stage0
			ev.EventLog = eventlog.Encode(log.Events)
			return ev, exp
		}, want: []want{{CheckReplay, 0, 2, ""}}},
		{name: "a hosted reference does not accept a stage 0", boot: func(t *testing.T) (*attest.Evidence, Expect) {
			hosted := *ref
			hosted.Stage0 = measure.NoStage0
			return attestStick(t, bootStick(t, "", image), &hosted)
		}, want: []want{{CheckStage0, 0, 0, "the release names no stage 0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, exp := tc.boot(t)
			v := Verify(ev, exp)
			if tc.want == nil {
				if !v.OK() {
					t.Fatalf("verdict fails:\n%s", v)
				}
				return
			}
			if v.OK() {
				t.Fatalf("verdict passes:\n%s", v)
			}
			t.Logf("verdict:\n%s", v)
			for _, w := range tc.want {
				found := false
				for _, c := range v.Failed() {
					if c.Name == w.check && c.PCR == w.pcr && c.Event == w.event && strings.Contains(c.Detail, w.detail) {
						found = true
					}
				}
				if !found {
					t.Errorf("no failed check %q at PCR %d event %d saying %q in:\n%s", w.check, w.pcr, w.event, w.detail, v)
				}
			}
		})
	}
}

func rootsOf(t *testing.T, sw *swtpmtest.Server) *x509.CertPool {
	t.Helper()
	bundle, err := sw.CABundle()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("no CA certificates")
	}
	return roots
}
